//! Child processes of the real binary in tests: killed when the test ends however it ends, and
//! stopped with SIGTERM when a test checks the graceful shutdown.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child process killed (and reaped) when dropped, even by a failed assertion.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Sends SIGTERM and asserts the process exits 0 within `within`.
    pub fn terminate(&mut self, within: Duration) {
        let pid = self.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = Instant::now();
        while self.0.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < within, "process {pid} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(self.0.wait().unwrap().success(), "process {pid} failed");
    }
}
