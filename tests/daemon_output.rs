//! What a daemon wrote: its stdout and stderr, read line by line on their own threads, the
//! last part kept for failure messages, and the listening line handed over once it comes.

use std::io::{BufRead, BufReader, Read};
use std::sync::{mpsc, Arc, Mutex};

/// Keeps the last `LOG_CAP` bytes of the daemon's output.
const LOG_CAP: usize = 128 * 1024;

#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<String>>);

impl Log {
    pub(crate) fn push(&self, line: &str) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.push_str(line);
        s.push('\n');
        if s.len() > LOG_CAP {
            let mut cut = s.len() - LOG_CAP;
            while !s.is_char_boundary(cut) {
                cut += 1;
            }
            s.drain(..cut);
        }
    }

    pub(crate) fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub(crate) fn spawn_line_reader(
    pipe: impl Read + Send + 'static,
    log: Log,
    prefix: &'static str,
    first_listen: Option<mpsc::Sender<String>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut tx = first_listen;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(t) = &tx {
                if line.starts_with("nanokvmd listening on ") {
                    let _ = t.send(line.clone());
                    tx = None;
                }
            }
            log.push(&format!("{prefix}{line}"));
        }
    })
}
