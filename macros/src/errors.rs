//! The compile errors of one macro call, collected and reported together.
//!
//! The invariant: an `Errors` is checked exactly once. Every check and
//! every option parser adds its errors here (each with the span of the
//! offending token) instead of returning at the first one, so the user
//! fixes them in one pass; `check` combines them into one `syn::Error`, in
//! the order they were found. An `Errors` dropped without `check` panics,
//! so no path through a macro can forget to report what it collected.

use std::cell::RefCell;
use std::fmt::Display;

pub(crate) struct Errors {
    /// `None` once checked.
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Errors {
    pub(crate) fn new() -> Errors {
        Errors {
            errors: RefCell::new(Some(Vec::new())),
        }
    }

    /// Adds an error.
    pub(crate) fn push(&self, error: syn::Error) {
        self.errors
            .borrow_mut()
            .as_mut()
            .expect("errors added after they were checked")
            .push(error);
    }

    /// Adds an error with `message` at `span`.
    pub(crate) fn error_at(&self, span: proc_macro2::Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// The value of `result`, or `None` with its error added.
    pub(crate) fn push_err<T>(&self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// All the errors added, as one; `Ok` when there are none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let errors = self
            .errors
            .borrow_mut()
            .take()
            .expect("errors checked twice");
        match errors.into_iter().reduce(|mut all, e| {
            all.combine(e);
            all
        }) {
            Some(all) => Err(all),
            None => Ok(()),
        }
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("a macro collected errors and never checked them");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Errors;
    use proc_macro2::Span;

    #[test]
    fn errors_are_reported_together_in_order() {
        let errors = Errors::new();
        errors.error_at(Span::call_site(), "first");
        assert_eq!(errors.push_err(Ok::<_, syn::Error>(3)), Some(3));
        let second: syn::Result<()> = Err(syn::Error::new(Span::call_site(), "second"));
        assert_eq!(errors.push_err(second), None);
        let all = errors.check().unwrap_err();
        let messages: Vec<String> = all.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages, ["first", "second"]);
        assert!(Errors::new().check().is_ok());
    }

    #[test]
    #[should_panic(expected = "never checked")]
    fn errors_never_checked_panic() {
        let errors = Errors::new();
        errors.error_at(Span::call_site(), "lost");
    }
}
