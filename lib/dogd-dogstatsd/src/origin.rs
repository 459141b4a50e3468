//! Origin detection: which process (and container) sent a packet on a Unix socket.
//!
//! The kernel tells us the sender's pid (SCM_CREDENTIALS on datagram sockets, SO_PEERCRED on stream
//! connections); `/proc/<pid>/cgroup` tells which container it runs in, for cgroup v1 and v2
//! layouts of Docker, containerd, CRI-O and Kubernetes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a pid → container answer is trusted (the agent caches for a minute).
const CACHE_TTL: Duration = Duration::from_secs(60);
/// Entries kept before the cache is cleared.
const CACHE_CAPACITY: usize = 10_000;

/// Where a message came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    /// The sender's pid, from the socket credentials.
    pub pid: Option<u32>,
    /// The sender's container, from its cgroup.
    pub container_id: Option<Arc<str>>,
}

/// Finds the container id in the text of `/proc/<pid>/cgroup`, if the process runs in one.
pub fn container_id_from_cgroup(cgroup: &str) -> Option<String> {
    // Each line is `hierarchy-id:controllers:path` (v1) or `0::path` (v2). The id is the last
    // 64-hex-character run in a path segment, after prefixes such as `docker-`, `cri-containerd-`,
    // `crio-` or `libpod-` and before a `.scope` suffix.
    cgroup.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        path.rsplit('/').find_map(container_id_in_segment)
    })
}

fn container_id_in_segment(segment: &str) -> Option<String> {
    let segment = segment.strip_suffix(".scope").unwrap_or(segment);
    let candidate = segment.rsplit(['-', ':']).next()?;
    (candidate.len() == 64 && candidate.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| candidate.to_ascii_lowercase())
}

/// When a pid was looked up, and the container found (if any).
type CachedContainer = (Instant, Option<Arc<str>>);

/// Resolves pids to containers, with a small time-bounded cache.
#[derive(Clone, Debug, Default)]
pub struct OriginResolver {
    cache: Arc<Mutex<HashMap<u32, CachedContainer>>>,
    proc_root: Option<Arc<std::path::Path>>,
}

impl OriginResolver {
    /// A resolver reading the real `/proc`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver reading `<root>/<pid>/cgroup` instead of `/proc` (tests).
    pub fn with_proc_root(root: &std::path::Path) -> Self {
        Self {
            proc_root: Some(Arc::from(root)),
            ..Self::default()
        }
    }

    /// The origin of a message sent by `pid`.
    pub fn resolve(&self, pid: u32) -> Origin {
        Origin {
            pid: Some(pid),
            container_id: self.container_of(pid),
        }
    }

    fn container_of(&self, pid: u32) -> Option<Arc<str>> {
        let now = Instant::now();
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((at, id)) = cache.get(&pid)
                && now.duration_since(*at) < CACHE_TTL
            {
                return id.clone();
            }
        }
        let path = match &self.proc_root {
            Some(root) => root.join(pid.to_string()).join("cgroup"),
            None => std::path::PathBuf::from(format!("/proc/{pid}/cgroup")),
        };
        // A process gone before we looked is simply not in a container we know of.
        let id = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| container_id_from_cgroup(&text))
            .map(Arc::from);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(pid, (now, id.clone()));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3a6fd1a9b7c4e2f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718";

    #[test]
    fn finds_container_ids_in_cgroup_v1_layouts() {
        let docker =
            format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n");
        assert_eq!(container_id_from_cgroup(&docker).as_deref(), Some(ID));
        let kubepods = format!("5:cpu,cpuacct:/kubepods/burstable/pod1234-5678/{ID}\n");
        assert_eq!(container_id_from_cgroup(&kubepods).as_deref(), Some(ID));
    }

    #[test]
    fn finds_container_ids_in_cgroup_v2_scopes() {
        for line in [
            format!("0::/system.slice/docker-{ID}.scope"),
            format!(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-{ID}.scope"
            ),
            format!("0::/machine.slice/libpod-{ID}.scope/container"),
            format!("0::/kubepods/besteffort/pod12/crio-{ID}.scope"),
        ] {
            assert_eq!(
                container_id_from_cgroup(&line).as_deref(),
                Some(ID),
                "{line}"
            );
        }
    }

    #[test]
    fn host_processes_have_no_container() {
        assert_eq!(
            container_id_from_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n"),
            None
        );
        assert_eq!(container_id_from_cgroup("0::/\n"), None);
        assert_eq!(container_id_from_cgroup("garbage"), None);
    }

    #[test]
    fn resolver_reads_the_pid_cgroup_file() {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("4242")).expect("mkdir");
        std::fs::write(
            root.path().join("4242/cgroup"),
            format!("0::/system.slice/docker-{ID}.scope\n"),
        )
        .expect("write");
        let resolver = OriginResolver::with_proc_root(root.path());
        let origin = resolver.resolve(4242);
        assert_eq!(origin.pid, Some(4242));
        assert_eq!(origin.container_id.as_deref(), Some(ID));
        assert_eq!(resolver.resolve(1).container_id, None, "missing process");
    }

    #[test]
    fn this_test_process_resolves_without_error() {
        let origin = OriginResolver::new().resolve(std::process::id());
        assert_eq!(origin.pid, Some(std::process::id()));
    }
}
