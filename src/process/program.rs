//! The last steps of the container init: finding the user's program the way
//! runc does (Go's exec.LookPath rules), fixing up inherited fds, execve.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// PATH used when the process env has none (the one runc and Docker use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Resolves `arg0` to the program to exec. Error texts follow Go's, since
/// engines map "executable file not found" / "no such file or directory" to
/// exit 127 and "permission denied" to 126.
pub fn find_executable(arg0: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = if arg0.starts_with('/') {
            PathBuf::from(arg0)
        } else {
            cwd.join(arg0)
        };
        return match std::fs::metadata(&p) {
            Err(e) => {
                let errno = e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO);
                Err(Error::msg(format!(
                    "exec: {arg0:?}: stat {arg0}: {}",
                    crate::error::ErrnoText(errno)
                )))
            }
            Ok(m) if m.is_dir() => Err(Error::msg(format!("exec: {arg0:?}: is a directory"))),
            Ok(m) if is_exec(&m) => Ok(p),
            Ok(_) => Err(Error::msg(format!("exec: {arg0:?}: permission denied"))),
        };
    }
    if !arg0.is_empty() {
        let path = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        for dir in path.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let mut p = if dir.starts_with('/') {
                PathBuf::from(dir)
            } else {
                cwd.join(dir)
            };
            p.push(arg0);
            if std::fs::metadata(&p).is_ok_and(|m| is_exec(&m)) {
                return Ok(p);
            }
        }
    }
    Err(Error::msg(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    )))
}

fn is_exec(m: &std::fs::Metadata) -> bool {
    // Only regular files can be executed: a device with an x bit would fail
    // in execve with EACCES anyway.
    m.file_type().is_file() && m.permissions().mode() & 0o111 != 0
}

fn cstring(field: &str, s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| Error::config(field, "contains a NUL byte"))
}

/// argv/envp built ahead of time, so the moment of exec does no allocation
/// and cannot fail on a NUL byte (the lead may prepare this before clone).
pub struct PreparedExec {
    path: CString,
    display_path: PathBuf,
    // Keep the strings alive: the pointer arrays point into them.
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl PreparedExec {
    /// An empty `args` gives argv[0] = path.
    pub fn new(path: &Path, args: &[String], env: &[String]) -> Result<Self> {
        let p = cstring("process.args[0]", path.as_os_str().as_bytes())?;
        let mut strings = Vec::with_capacity(args.len().max(1) + env.len());
        if args.is_empty() {
            strings.push(p.clone());
        }
        for a in args {
            strings.push(cstring("process.args", a.as_bytes())?);
        }
        let argc = strings.len();
        for e in env {
            strings.push(cstring("process.env", e.as_bytes())?);
        }
        // CString's heap buffer does not move when the Vec holding it does,
        // so these pointers stay valid for the life of `strings`.
        let mut argv: Vec<_> = strings[..argc].iter().map(|c| c.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<_> = strings[argc..].iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        Ok(PreparedExec {
            path: p,
            display_path: path.to_path_buf(),
            _strings: strings,
            argv,
            envp,
        })
    }

    /// execve. Returns only on failure, with the error.
    pub fn exec(&self) -> Error {
        // SAFETY: path, argv and envp point into CStrings owned by self, and
        // both arrays are NULL-terminated.
        unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        Error::sys_path("exec", &self.display_path, Errno::last())
    }
}

/// execve(path, args, env). Returns only on failure, with the error.
/// An empty `args` gives argv[0] = path.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> Error {
    match PreparedExec::new(path, args, env) {
        Ok(p) => p.exec(),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::in_child_exit_code as in_child;
    use std::os::fd::AsRawFd;

    fn setup() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for (name, mode) in [("prog", 0o755), ("noexec", 0o644), ("both", 0o644)] {
            let p = bin.join(name);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let bin2 = d.path().join("bin2");
        std::fs::create_dir(&bin2).unwrap();
        std::fs::write(bin2.join("both"), "").unwrap();
        std::fs::set_permissions(bin2.join("both"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::create_dir(bin2.join("dir")).unwrap();
        d
    }

    #[test]
    fn searches_path_from_env() {
        let d = setup();
        let root = d.path();
        let env = vec![
            "PATH=/nonexistent".to_string(),
            format!("PATH={}/bin:{}/bin2", root.display(), root.display()),
        ];
        assert_eq!(
            find_executable("prog", &env, root).unwrap(),
            root.join("bin/prog")
        );
        // Not executable in the first dir: keep searching.
        assert_eq!(
            find_executable("both", &env, root).unwrap(),
            root.join("bin2/both")
        );
        // Relative PATH entries are relative to cwd; empty means ".".
        let env = vec!["PATH=:bin".to_string()];
        assert_eq!(
            find_executable("prog", &env, root).unwrap(),
            root.join("bin/prog")
        );
        for name in ["noexec", "dir", "missing", ""] {
            let env = vec![format!(
                "PATH={}/bin:{}/bin2",
                root.display(),
                root.display()
            )];
            assert_eq!(
                find_executable(name, &env, root).unwrap_err().to_string(),
                format!("exec: {name:?}: executable file not found in $PATH")
            );
        }
    }

    #[test]
    fn default_path() {
        let expected = DEFAULT_PATH
            .split(':')
            .map(|d| Path::new(d).join("sh"))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| is_exec(&m)))
            .unwrap();
        assert_eq!(
            find_executable("sh", &["HOME=/".into()], Path::new("/")).unwrap(),
            expected
        );
    }

    #[test]
    fn paths_with_slash() {
        let d = setup();
        let root = d.path();
        assert_eq!(
            find_executable("./bin/prog", &[], root).unwrap(),
            root.join("./bin/prog")
        );
        let abs = root.join("bin/prog");
        assert_eq!(
            find_executable(abs.to_str().unwrap(), &[], Path::new("/")).unwrap(),
            abs
        );
        assert_eq!(
            find_executable("/x/y", &[], root).unwrap_err().to_string(),
            "exec: \"/x/y\": stat /x/y: no such file or directory"
        );
        assert_eq!(
            find_executable("bin/noexec", &[], root)
                .unwrap_err()
                .to_string(),
            "exec: \"bin/noexec\": permission denied"
        );
        assert_eq!(
            find_executable("bin2/dir", &[], root)
                .unwrap_err()
                .to_string(),
            "exec: \"bin2/dir\": is a directory"
        );
    }

    #[test]
    fn exec_in_child() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let f = std::fs::File::create(&out).unwrap();
        let code = in_child(|| {
            // SAFETY: redirect stdout of our own child to the file.
            unsafe { libc::dup2(f.as_raw_fd(), 1) };
            let e = exec(
                Path::new("/bin/sh"),
                &["mysh".into(), "-c".into(), "echo $0 $FOO".into()],
                &["FOO=bar".into()],
            );
            eprintln!("{e}");
            9
        });
        assert_eq!(code, 0);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "mysh bar\n");
        let e = exec(Path::new("/nonexistent/x"), &["x".into()], &[]);
        assert_eq!(
            e.to_string(),
            "exec /nonexistent/x: no such file or directory"
        );
        let e = exec(Path::new("/bin/sh"), &["a\0b".into()], &[]);
        assert_eq!(e.to_string(), "process.args: contains a NUL byte");
    }
}
