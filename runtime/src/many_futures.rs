//! R's `value()`, `resolved()` and `resolve()` over one future or many: a
//! `Vec` or an array of futures is collected in order, the first error in
//! order wins.

use crate::{Error, Future};
use serde::de::DeserializeOwned;

/// What [`value`] can collect: one future, or a collection of them in order.
pub trait Values {
    /// The collected value(s).
    type Output;
    /// Waits for and collects the value(s); the first error (in order) wins.
    fn collect_values(self) -> Result<Self::Output, Error>;
}

impl<T: DeserializeOwned> Values for Future<T> {
    type Output = T;
    fn collect_values(self) -> Result<T, Error> {
        self.value()
    }
}

impl<T: DeserializeOwned> Values for Vec<Future<T>> {
    type Output = Vec<T>;
    fn collect_values(self) -> Result<Vec<T>, Error> {
        self.into_iter().map(Future::value).collect()
    }
}

impl<T: DeserializeOwned, const N: usize> Values for [Future<T>; N] {
    type Output = [T; N];
    fn collect_values(self) -> Result<[T; N], Error> {
        let values: Vec<T> = self
            .into_iter()
            .map(Future::value)
            .collect::<Result<_, _>>()?;
        Ok(values
            .try_into()
            .unwrap_or_else(|_| unreachable!("N futures give N values")))
    }
}

/// Collects the value of a future, or the values of a `Vec` or array of
/// futures in order (R's `value()`); the first error in order wins.
///
/// ```
/// use futurize::prelude::*;
/// let fs: Vec<_> = (1..=3).map(|i| future!(i * 10)).collect();
/// assert_eq!(value(fs).unwrap(), vec![10, 20, 30]);
/// ```
pub fn value<V: Values>(futures: V) -> Result<V::Output, Error> {
    futures.collect_values()
}

/// What [`resolved`] and [`resolve`] accept: one future or a slice of them.
pub trait Resolvable {
    /// `bool` for one future, `Vec<bool>` for several.
    type Output;
    /// Whether each is resolved, without blocking.
    fn check_resolved(&self) -> Self::Output;
    /// Waits until all are resolved.
    fn wait_resolved(&self);
}

impl<T: DeserializeOwned> Resolvable for Future<T> {
    type Output = bool;
    fn check_resolved(&self) -> bool {
        self.resolved()
    }
    fn wait_resolved(&self) {
        self.resolve()
    }
}

impl<T: DeserializeOwned> Resolvable for [Future<T>] {
    type Output = Vec<bool>;
    fn check_resolved(&self) -> Vec<bool> {
        self.iter().map(Future::resolved).collect()
    }
    fn wait_resolved(&self) {
        self.iter().for_each(Future::resolve)
    }
}

impl<T: DeserializeOwned> Resolvable for Vec<Future<T>> {
    type Output = Vec<bool>;
    fn check_resolved(&self) -> Vec<bool> {
        self.as_slice().check_resolved()
    }
    fn wait_resolved(&self) {
        self.as_slice().wait_resolved()
    }
}

/// Whether a future (or each of several) is resolved, without blocking (R's `resolved()`).
///
/// ```
/// use futurize::prelude::*;
/// let f = future!(2 * 21);
/// resolve(&f);
/// assert!(resolved(&f));
/// ```
pub fn resolved<R: Resolvable + ?Sized>(futures: &R) -> R::Output {
    futures.check_resolved()
}

/// Waits until a future (or all of several) is resolved, without collecting (R's `resolve()`).
///
/// ```
/// use futurize::prelude::*;
/// let fs = vec![future!(1), future!(2)];
/// resolve(&fs);
/// assert_eq!(resolved(&fs), vec![true, true]);
/// ```
pub fn resolve<R: Resolvable + ?Sized>(futures: &R) {
    futures.wait_resolved()
}
