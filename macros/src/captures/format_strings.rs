//! Names a format string uses implicitly: `"{x}"`, `"{x:?}"`, `"{:w$}"`,
//! `"{:.p$}"`. They are captures just like `x` written as an argument.
//!
//! The invariant: only named references are reported, in order; positional
//! ones (`{}`, `{0}`, `{:1$}`) and escaped braces (`{{x}}`) name nothing.

/// The identifiers a format string refers to by name, in order.
pub(crate) fn implicit_names(format: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
            }
            '{' => {
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    inner.push(c);
                }
                let (argument, spec) = match inner.split_once(':') {
                    Some((a, s)) => (a.trim(), s),
                    None => (inner.trim(), ""),
                };
                if is_identifier(argument) {
                    names.push(argument.to_string());
                }
                names.extend(dollar_names(spec));
            }
            _ => {}
        }
    }
    names
}

/// `name$` references in a format spec (width and precision).
fn dollar_names(spec: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    for c in spec.chars() {
        if c == '_' || c.is_alphanumeric() {
            current.push(c);
        } else {
            if c == '$' && is_identifier(&current) {
                names.push(current.clone());
            }
            current.clear();
        }
    }
    names
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_alphabetic() => chars.all(|c| c == '_' || c.is_alphanumeric()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::implicit_names;

    #[test]
    fn finds_arguments_widths_and_precisions() {
        assert_eq!(implicit_names("{x} and {y:?}"), ["x", "y"]);
        assert_eq!(implicit_names("{:>w$.p$}"), ["w", "p"]);
        assert_eq!(implicit_names("{0} {} {{z}} {1:2$}"), Vec::<String>::new());
        assert_eq!(implicit_names("{ total :.1}"), ["total"]);
    }
}
