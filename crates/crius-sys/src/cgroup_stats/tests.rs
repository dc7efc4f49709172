use std::fs;
use std::path::Path;

use super::*;
use crate::cgroups::CgroupLayout;

fn write(dir: &Path, file: &str, text: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(file), text).unwrap();
}

/// A v1 tree (cpu, cpuacct, memory, pids in their own hierarchies) under a tempdir.
fn v1_layout(root: &Path, with_pids: bool) -> CgroupLayout {
    let mut hierarchies = vec!["cpu", "cpuacct", "memory"];
    if with_pids {
        hierarchies.push("pids");
    }
    let mut mountinfo = String::new();
    for (i, h) in hierarchies.iter().enumerate() {
        fs::create_dir_all(root.join(h)).unwrap();
        mountinfo.push_str(&format!("{} 31 0:{} / {}/{h} rw - cgroup cgroup rw,{h}\n", 32 + i, 29 + i, root.display()));
    }
    CgroupLayout::from_mountinfo(root, &mountinfo).unwrap()
}

fn v2_layout(root: &Path) -> CgroupLayout {
    let mountinfo = format!("50 31 0:40 / {} rw - cgroup2 cgroup2 rw\n", root.display());
    CgroupLayout::from_mountinfo(root, &mountinfo).unwrap()
}

const V1_MEMORY_STAT: &str = "cache 100\nrss 200\ninactive_file 7\npgfault 1\n\
total_cache 4096000\ntotal_rss 2048000\ntotal_mapped_file 1000\ntotal_inactive_file 1096000\n\
total_pgfault 5000\ntotal_pgmajfault 12\n";

#[test]
fn v1_full_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = v1_layout(tmp.path(), true);
    let cg = "/kube/pod1/ctr";
    let d = |h: &str| tmp.path().join(h).join("kube/pod1/ctr");
    write(&d("cpuacct"), "cpuacct.usage", "123456789\n");
    write(&d("cpuacct"), "cpuacct.stat", "user 10\nsystem 5\n");
    write(&d("cpu"), "cpu.stat", "nr_periods 9\nnr_throttled 3\nthrottled_time 4000\n");
    write(&d("memory"), "memory.usage_in_bytes", "8192000\n");
    write(&d("memory"), "memory.limit_in_bytes", "16384000\n");
    write(&d("memory"), "memory.stat", V1_MEMORY_STAT);
    write(&d("memory"), "memory.failcnt", "2\n");
    write(&d("memory"), "memory.memsw.usage_in_bytes", "8200000\n");
    write(&d("memory"), "memory.memsw.limit_in_bytes", "20000000\n");
    write(&d("pids"), "pids.current", "4\n");

    let s = read_cgroup_stats(&layout, cg).unwrap().expect("the cgroup exists");
    let cpu = s.cpu.unwrap();
    assert_eq!(cpu.usage_ns, 123_456_789);
    // cpuacct.stat is in USER_HZ ticks (10 ms).
    assert_eq!((cpu.user_ns, cpu.system_ns), (Some(100_000_000), Some(50_000_000)));
    assert_eq!((cpu.throttled_periods, cpu.throttled_ns), (Some(3), Some(4000)));
    let m = s.memory.unwrap();
    assert_eq!(m.usage_bytes, 8_192_000);
    assert_eq!(m.limit_bytes, Some(16_384_000));
    // The total_ values win over the cgroup's own.
    assert_eq!((m.rss_bytes, m.cache_bytes, m.inactive_file_bytes), (2_048_000, 4_096_000, 1_096_000));
    assert_eq!((m.page_faults, m.major_page_faults, m.fail_count), (5000, 12, Some(2)));
    assert_eq!(m.working_set_bytes(), 8_192_000 - 1_096_000);
    let swap = s.swap.unwrap();
    assert_eq!(swap.usage_bytes, 8000);
    assert_eq!(swap.limit_bytes, Some(20_000_000 - 16_384_000));
    assert_eq!(s.pids, Some(4));
}

#[test]
fn v1_unlimited_and_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = v1_layout(tmp.path(), false);
    let d = |h: &str| tmp.path().join(h).join("c");
    // No cpuacct files at all, no memsw (swap accounting off), no pids hierarchy.
    fs::create_dir_all(d("cpuacct")).unwrap();
    write(&d("memory"), "memory.usage_in_bytes", "4096\n");
    write(&d("memory"), "memory.limit_in_bytes", "9223372036854771712\n");
    write(&d("memory"), "cgroup.procs", "1\n2\n");
    write(&d("memory").join("child"), "cgroup.procs", "3\n");

    let s = read_cgroup_stats(&layout, "/c").unwrap().unwrap();
    assert_eq!(s.cpu, None);
    let m = s.memory.unwrap();
    assert_eq!(m.limit_bytes, None, "v1's huge limit is no limit");
    // No memory.stat: everything from it is zero, the working set is the usage.
    assert_eq!(m.working_set_bytes(), 4096);
    assert_eq!(s.swap, None);
    // Without pids.current, cgroup.procs of the cgroup and its children are counted.
    assert_eq!(s.pids, Some(3));
}

#[test]
fn absent_cgroup_is_none() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(read_cgroup_stats(&v1_layout(tmp.path(), true), "/nope").unwrap(), None);
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(read_cgroup_stats(&v2_layout(tmp.path()), "/nope").unwrap(), None);
}

#[test]
fn v2_full_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = v2_layout(tmp.path());
    let d = tmp.path().join("kubepods/pod1/ctr");
    write(
        &d,
        "cpu.stat",
        "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 1\nnr_throttled 1\nthrottled_usec 7\n",
    );
    write(&d, "memory.current", "10000\n");
    write(&d, "memory.max", "max\n");
    write(&d, "memory.stat", "anon 3000\nfile 6000\nfile_mapped 100\ninactive_file 2500\npgfault 77\npgmajfault 1\n");
    write(&d, "memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n");
    write(&d, "memory.swap.current", "300\n");
    write(&d, "memory.swap.max", "1000\n");
    write(&d, "pids.current", "2\n");

    let s = read_cgroup_stats(&layout, "/kubepods/pod1/ctr").unwrap().unwrap();
    let cpu = s.cpu.unwrap();
    assert_eq!((cpu.usage_ns, cpu.user_ns, cpu.system_ns), (2_500_000, Some(2_000_000), Some(500_000)));
    assert_eq!((cpu.throttled_periods, cpu.throttled_ns), (Some(1), Some(7000)));
    let m = s.memory.unwrap();
    assert_eq!((m.usage_bytes, m.limit_bytes), (10_000, None));
    assert_eq!((m.rss_bytes, m.cache_bytes, m.inactive_file_bytes), (3000, 6000, 2500));
    assert_eq!(m.working_set_bytes(), 7500);
    assert_eq!((m.page_faults, m.major_page_faults, m.fail_count), (77, 1, Some(5)));
    assert_eq!(s.swap, Some(SwapStats { usage_bytes: 300, limit_bytes: Some(1000) }));
    assert_eq!(s.pids, Some(2));
}

#[test]
fn v2_missing_controllers_and_counters_near_the_top() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = v2_layout(tmp.path());
    let d = tmp.path().join("c");
    // Only cpu enabled (memory and pids controllers not delegated), counters near u64::MAX.
    write(&d, "cpu.stat", &format!("usage_usec {}\n", u64::MAX / 1000 + 5));
    write(&d, "cgroup.procs", "");
    let s = read_cgroup_stats(&layout, "/c").unwrap().unwrap();
    // A value whose ns would overflow saturates instead of wrapping.
    assert_eq!(s.cpu.unwrap().usage_ns, u64::MAX);
    assert_eq!((s.memory, s.swap), (None, None));
    assert_eq!(s.pids, Some(0));
    // The usage is larger than the limit after a limit was lowered: no underflow.
    write(&d, "memory.current", "100\n");
    write(&d, "memory.stat", "inactive_file 500\n");
    let s = read_cgroup_stats(&layout, "/c").unwrap().unwrap();
    assert_eq!(s.memory.unwrap().working_set_bytes(), 0);
}

#[test]
fn garbage_in_files_is_not_a_number() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = v2_layout(tmp.path());
    let d = tmp.path().join("c");
    write(&d, "memory.current", "not a number\n");
    write(&d, "cpu.stat", "usage_usec\nuser_usec 5 extra\n");
    let s = read_cgroup_stats(&layout, "/c").unwrap().unwrap();
    assert_eq!((s.cpu, s.memory), (None, None));
}

const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     280       4    0    0    0     0          0         0      280       4    0    0    0     0       0          0
  eth0: 18446744073709551615 120 2 1 0 0 0 0 5000 60 3 4 0 0 0 0
broken: 1 2 3
";

#[test]
fn parses_proc_net_dev() {
    let ifs = parse_net_dev(NET_DEV);
    assert_eq!(ifs.len(), 2);
    assert_eq!(ifs[0].name, "lo");
    assert_eq!((ifs[0].rx_bytes, ifs[0].tx_bytes), (280, 280));
    let eth0 = &ifs[1];
    assert_eq!(eth0.name, "eth0");
    assert_eq!((eth0.rx_bytes, eth0.rx_packets, eth0.rx_errors, eth0.rx_dropped), (u64::MAX, 120, 2, 1));
    assert_eq!((eth0.tx_bytes, eth0.tx_packets, eth0.tx_errors, eth0.tx_dropped), (5000, 60, 3, 4));
}

#[test]
fn reads_the_host_netns_counters() {
    // The test's own namespace, through the same setns path a pod's takes.
    let ifs = read_net_dev_in_netns(Path::new("/proc/self/ns/net")).unwrap();
    assert!(ifs.iter().any(|i| i.name == "lo"), "{ifs:?}");
    assert!(read_net_dev_in_netns(Path::new("/nonexistent/netns")).is_err());
}

#[test]
fn disk_usage_counts_blocks_and_inodes_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    assert_eq!(disk_usage(&root).unwrap(), None);
    fs::create_dir_all(root.join("a/b")).unwrap();
    let empty = disk_usage(&root).unwrap().unwrap();
    assert_eq!(empty.inodes, 3);
    fs::write(root.join("a/b/file"), vec![1u8; 64 * 1024]).unwrap();
    fs::hard_link(root.join("a/b/file"), root.join("a/link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("sym")).unwrap();
    let u = disk_usage(&root).unwrap().unwrap();
    // The file once (not its hard link), and the symlink itself (not its target).
    assert_eq!(u.inodes, 5);
    assert!(u.bytes >= empty.bytes + 64 * 1024, "{u:?} vs {empty:?}");
    assert!(u.bytes < empty.bytes + 2 * 64 * 1024 + 8192, "the hard link counted twice: {u:?}");
}
