//! The harness of the end-to-end tests: a cluster started by the real
//! `meridian cluster up` in a temporary directory, on free ports, and the
//! real binary run against it.

#![allow(dead_code)]

use meridian::cli::cluster::ClusterFile;
use std::io::Read;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A cluster run by `meridian cluster up` in a temporary directory, with
/// its state in `.meridian` there.
pub struct Lab {
    pub dir: tempfile::TempDir,
    supervisor: Option<Child>,
}

impl Lab {
    /// Starts the cluster `make_topology()` (a topology file's text, on
    /// free ports) and waits until every node serves. A port taken by
    /// another process between choosing it and a node binding it starts
    /// the cluster again on new ports (a few times).
    pub fn start(make_topology: impl Fn() -> String) -> Lab {
        Lab::start_with(make_topology, &[])
    }

    /// [`Lab::start`] with more arguments for `cluster up`.
    pub fn start_with(make_topology: impl Fn() -> String, up_args: &[&str]) -> Lab {
        const ATTEMPTS: usize = 3;
        for attempt in 1..=ATTEMPTS {
            match Lab::try_start(&make_topology(), up_args) {
                Ok(lab) => return lab,
                Err(report) if attempt < ATTEMPTS && report.contains("Address already in use") => {
                    eprintln!("a port was taken; starting the cluster again on others");
                }
                Err(report) => panic!("{report}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn try_start(topology: &str, up_args: &[&str]) -> Result<Lab, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lab.toml"), topology).unwrap();
        let supervisor = Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(["cluster", "up", "lab.toml", "--ready-timeout", "80"])
            .args(up_args)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lab = Lab {
            dir,
            supervisor: Some(supervisor),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(file) = ClusterFile::load(&lab.state_dir()) {
                if file.ready {
                    return Ok(lab);
                }
            }
            if let Some(status) = lab.supervisor_exit() {
                let output = lab.stop_supervisor();
                return Err(format!(
                    "cluster up {status}:\n{}\n{}",
                    String::from_utf8_lossy(&output.stderr),
                    lab.logs()
                ));
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ready in time\n{}",
                lab.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join(".meridian")
    }

    pub fn cluster_file(&self) -> ClusterFile {
        ClusterFile::load(&self.state_dir()).unwrap()
    }

    /// The topology the lab's nodes run (its copy, which membership
    /// changes rewrite).
    pub fn topology(&self) -> meridian::topology::Topology {
        meridian::topology::Topology::load(self.cluster_file().topology).unwrap()
    }

    /// Runs `meridian ARGS` in the lab's directory, with no other flags.
    pub fn meridian(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_meridian"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed and returns its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.meridian(args);
        assert!(
            output.status.success(),
            "meridian {args:?} failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command that must fail with exit code 1 and returns its
    /// stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.meridian(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "meridian {args:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    pub fn supervisor_exit(&mut self) -> Option<ExitStatus> {
        self.supervisor.as_mut()?.try_wait().unwrap()
    }

    /// Waits for `cluster up` to exit (asking it to with SIGTERM if needed)
    /// and returns what it printed.
    pub fn stop_supervisor(&mut self) -> Output {
        let mut child = self.supervisor.take().expect("cluster up is running");
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut termed = false;
        while child.try_wait().unwrap().is_none() {
            if !termed {
                // SAFETY: kill(2) on our own child, not yet reaped.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                termed = true;
            }
            if Instant::now() >= deadline {
                child.kill().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut output = Output {
            status: child.wait().unwrap(),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut output.stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_end(&mut output.stderr)
            .unwrap();
        output
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let Ok(entries) = std::fs::read_dir(self.state_dir().join("logs")) else {
            return text;
        };
        for entry in entries.flatten() {
            let log = std::fs::read_to_string(entry.path()).unwrap_or_default();
            text.push_str(&format!("--- {}\n{log}\n", entry.path().display()));
        }
        text
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.supervisor.is_some() {
            self.stop_supervisor();
        }
    }
}

/// A topology of `regions` with three nodes each (N = 3) on ports that are
/// free right now, and WAN links `(region, region, rtt_ms)`.
pub fn topology(regions: &[&str], links: &[(&str, &str, u32)]) -> String {
    let sockets: Vec<UdpSocket> = (0..6 * regions.len())
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut ports = sockets.iter().map(|s| s.local_addr().unwrap().port());
    let mut text = String::from("[cluster]\nname = \"lab\"\nreplication_factor = 3\n");
    for region in regions {
        text.push_str(&format!("\n[[region]]\nname = \"{region}\"\n"));
        for n in 1..=3 {
            text.push_str(&format!(
                "\n[[region.node]]\nid = \"{region}-{n}\"\nclient_addr = \"127.0.0.1:{}\"\npeer_addr = \"127.0.0.1:{}\"\n",
                ports.next().unwrap(),
                ports.next().unwrap()
            ));
        }
    }
    for (a, b, rtt_ms) in links {
        text.push_str(&format!(
            "\n[[link]]\nregions = [\"{a}\", \"{b}\"]\nrtt_ms = {rtt_ms}\njitter_ms = 1\n"
        ));
    }
    text
}

/// A current-thread runtime for a test's SDK clients.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
