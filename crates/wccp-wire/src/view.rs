//! The part every zero-copy header view shares, written once.

/// Declares a view `$name<T: AsRef<[u8]>>` over a buffer, with the constructors of the crate
/// contract: `new_unchecked`, `new_checked` (which runs the view's own `check_len`, written next
/// to its accessors) and `into_inner`.
macro_rules! view {
    ($(#[$meta:meta])* pub struct $name:ident;) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            #[doc = concat!(
                "Wraps `buffer` without checks; accessors may panic unless [`",
                stringify!($name),
                "::check_len`] passes."
            )]
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wraps `buffer` and checks it: the way to read untrusted input.
            ///
            /// # Errors
            #[doc = concat!("See [`", stringify!($name), "::check_len`].")]
            pub fn new_checked(buffer: T) -> Result<Self, crate::error::Error> {
                let p = Self::new_unchecked(buffer);
                p.check_len()?;
                Ok(p)
            }

            /// Returns the wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}
