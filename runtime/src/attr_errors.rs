//! What a `#[futurize]` function does with a pipeline's [`Error`]: it
//! returns it through the function's `Result<T, E>` when `E` can be made
//! from it (`E: From<futurize::Error>`: `Box<dyn Error>`, `anyhow::Error`,
//! an error enum of the user's with a `From` impl), and panics, saying so,
//! when it cannot. The choice is made at compile time by method resolution
//! on `&&ErrorInto<E>`: the `From` impl is found first when it applies.

use crate::Error;
use std::marker::PhantomData;

/// Stands for the function's error type `E` in the method probe.
pub struct ErrorInto<E>(PhantomData<fn() -> E>);

impl<E> ErrorInto<E> {
    /// The probe for `E`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        ErrorInto(PhantomData)
    }
}

/// Chosen first: `E` can be made from a [`Error`].
pub trait ErrorViaFrom<E> {
    /// The error as the function's `E`.
    fn __futurize_error(&self, error: Error, function: &str) -> E;
}

impl<E: From<Error>> ErrorViaFrom<E> for &ErrorInto<E> {
    fn __futurize_error(&self, error: Error, _function: &str) -> E {
        E::from(error)
    }
}

/// Chosen otherwise: a panic that says why.
pub trait ErrorViaPanic<E> {
    /// Panics with `error` and what to do.
    fn __futurize_error(&self, error: Error, function: &str) -> E;
}

impl<E> ErrorViaPanic<E> for ErrorInto<E> {
    fn __futurize_error(&self, error: Error, function: &str) -> E {
        panic!(
            "{error} (`#[futurize]` on `{function}`: its error type cannot be made from a \
             `futurize::Error`, so a pipeline's error is a panic; implement \
             `From<futurize::Error>` for it, or use `Box<dyn std::error::Error>`, to get \
             the error as a value)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Mine(String);

    impl From<Error> for Mine {
        fn from(e: Error) -> Self {
            Mine(e.to_string())
        }
    }

    fn error() -> Error {
        Error::Protocol("bogus".to_string())
    }

    #[test]
    fn an_error_type_with_from_gets_the_error() {
        let e: Mine = (&&ErrorInto::<Mine>::new()).__futurize_error(error(), "f");
        assert!(e.0.contains("bogus"), "{e:?}");
    }

    // The borrows are the probe: `&&` reaches the `From` impl first, `&`
    // only the panicking one.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn any_other_error_type_panics_saying_why() {
        let panic = std::panic::catch_unwind(|| {
            let _: String = (&&ErrorInto::<String>::new()).__futurize_error(error(), "f");
        })
        .unwrap_err();
        let text = panic.downcast_ref::<String>().expect("a formatted message");
        assert!(
            text.contains("bogus") && text.contains("From<futurize::Error>"),
            "{text}"
        );
    }
}
