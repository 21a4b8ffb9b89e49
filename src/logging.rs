//! Logging the way engines read it (runc-compat.md): with `--log F
//! --log-format json` a failure appends exactly one `{"level":"error",...}`
//! line to F. Podman parses the whole file as one JSON object, so nothing
//! else goes to a JSON log unless `--debug` asks for it. Warnings always
//! reach stderr.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::state::now_rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug)]
pub struct Logger {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Install the logger once, at startup.
pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    if let Some(path) = &file {
        // The file exists after every command, logged to or not (engines open it afterwards).
        // Non-blocking: a FIFO there must not hold the command up before it has anything
        // to say (nor be opened and closed under its reader).
        use std::os::unix::fs::OpenOptionsExt;
        if !path.exists() {
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path);
        }
    }
    let logger = LOGGER.get_or_init(|| Logger {
        file,
        format,
        debug,
    });
    let level = if logger.debug {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Warn
    };
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}

/// One line in the configured format.
pub fn format_line(format: Format, level: &str, msg: &str) -> String {
    let time = now_rfc3339();
    match format {
        Format::Json => {
            let obj = serde_json::json!({"level": level, "msg": msg, "time": time});
            format!("{obj}\n")
        }
        Format::Text => format!("time=\"{time}\" level={level} msg={msg:?}\n"),
    }
}

impl Logger {
    fn append(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let line = format_line(self.format, level, msg);
        // O_APPEND makes each line one write, so concurrent writers do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn || self.debug
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let msg = record.args().to_string();
        let level = record.level().as_str().to_ascii_lowercase();
        let level = if level == "warn" { "warning" } else { &level };
        let to_file = self.file.is_some() && (self.format == Format::Text || self.debug);
        if to_file {
            self.append(level, &msg);
        }
        if record.level() <= log::Level::Warn || self.file.is_none() {
            eprintln!("{level}: {msg}");
        }
    }

    fn flush(&self) {}
}

/// Report the error that ends this command: stderr and one line in the log file.
pub fn report_error(msg: &str) {
    eprintln!("skiff: {msg}");
    if let Some(logger) = LOGGER.get() {
        logger.append("error", msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_shape() {
        let line = format_line(Format::Json, "error", "container does not exist: x");
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container does not exist: x");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }
}
