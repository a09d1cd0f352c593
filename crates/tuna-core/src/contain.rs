//! Calls into libraries that panic on malformed input, made into errors.
//!
//! Some readers tuna relies on (the `tokenizers` library's deserialisers and post-processors)
//! `expect` things of a file they were given instead of returning an error. A model file is
//! untrusted input: a panic there must become an error naming the file, not a crash, and not a
//! panic message with a backtrace on the user's screen.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Set while this thread runs a contained call: its panics are not printed.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Wraps the panic hook once so that it stays silent for panics inside [`contain`].
fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CONTAINED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it becomes `Err` with the panic's message. `f` must leave nothing
/// half-changed that the caller keeps (it is given owned or freshly built values only).
pub fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was = CONTAINED.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    result.map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            s.to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic without a message".into()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::contain;

    #[test]
    fn a_panic_becomes_its_message_and_other_results_pass_through() {
        assert_eq!(contain(|| 7), Ok(7));
        let v: Vec<u32> = Vec::new();
        let err = contain(|| v[3]).unwrap_err();
        assert!(err.contains("index out of bounds"), "{err}");
        assert_eq!(
            contain(|| panic!("bad {}", "file")),
            Err::<(), _>("bad file".into())
        );
    }
}
