//! How a future's captures are written at creation: each tag says what form
//! its variable travels in ([`SendCapture`]), so that the bulk tags can send
//! plain numbers as one piece of bytes while every other capture goes
//! through serde as it is.

use super::{MutRefTag, OwnedTag, RefTag};
use crate::Error;
use crate::protocol::codec;
use serde::Serialize;

/// What a captured variable is sent as.
#[diagnostic::on_unimplemented(
    message = "a captured value of type `{Self}` cannot be sent to a worker",
    note = "captured values must implement serde's `Serialize` and `Deserialize` (derive them)"
)]
pub trait SendCapture<'a> {
    /// The caller's variable, as the macro passes it (`&x`).
    type Var;
    /// What is serialized.
    type Sent: Serialize;
    /// The form `var` is sent in.
    fn sent(var: Self::Var) -> Self::Sent;
}

impl<'a, T: Serialize + 'a> SendCapture<'a> for OwnedTag<T> {
    type Var = &'a T;
    type Sent = &'a T;
    fn sent(var: &'a T) -> &'a T {
        var
    }
}

impl<'a, U: Serialize + ?Sized + 'a> SendCapture<'a> for RefTag<U> {
    type Var = &'a &'a U;
    type Sent = &'a U;
    fn sent(var: &'a &'a U) -> &'a U {
        var
    }
}

/// Never sent: a `&mut` capture fails `__not_mut` first, and this
/// impl keeps that the one error about it.
impl<'a, U: ?Sized + 'a> SendCapture<'a> for MutRefTag<U> {
    type Var = &'a &'a mut U;
    type Sent = ();
    fn sent(_: &'a &'a mut U) {}
}

macro_rules! tuple_send {
    ($($tag:ident $var:ident),*) => {
        impl<'a, $($tag: SendCapture<'a>),*> SendCapture<'a> for ($($tag,)*) {
            type Var = ($($tag::Var,)*);
            type Sent = ($($tag::Sent,)*);
            #[allow(clippy::unused_unit)]
            fn sent(var: Self::Var) -> Self::Sent {
                let ($($var,)*) = var;
                ($($tag::sent($var),)*)
            }
        }
    };
}

tuple_send!();
tuple_send!(A a);
tuple_send!(A a, B b);
tuple_send!(A a, B b, C c);
tuple_send!(A a, B b, C c, D d);
tuple_send!(A a, B b, C c, D d, E e);
tuple_send!(A a, B b, C c, D d, E e, F f);
tuple_send!(A a, B b, C c, D d, E e, F f, G g);
tuple_send!(A a, B b, C c, D d, E e, F f, G g, H h);
tuple_send!(A a, B b, C c, D d, E e, F f, G g, H h, I i);
tuple_send!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j);
tuple_send!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k);
tuple_send!(A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K k, L l);

/// Encodes the captures of a future as their tags say, naming them in a
/// size error.
pub fn __encode_captures_of<'a, C: SendCapture<'a>>(
    _tags: &C,
    vars: C::Var,
    label: Option<&str>,
) -> Result<Vec<u8>, Error> {
    let what = match label {
        Some(l) => format!("the captures of future \"{l}\""),
        None => "the captures of a future".to_string(),
    };
    codec::encode(&C::sent(vars), &what)
}
