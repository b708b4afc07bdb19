//! net_tap inside a network namespace: a frame the kernel sends on the TAP arrives in
//! `rx_burst`, and a frame we `tx_burst` is read by the kernel side (an AF_PACKET socket).
//! The configured MTU, `set_mtu` and `set_mac_address` reach the kernel interface, `Port::info`
//! reports its interface index, and dropping `Eal` while the port is still claimed shuts it
//! down (the TAP interface disappears).
//!
//! EAL runs with `--no-pci` (the `EalArgs` default, also set by `common::eal_args`): vdevs only.
//!
//! The test creates namespace `hdpdk-<random>` (prefix from `common::name_prefix`; IPv6 off; a
//! drop guard deletes it even on failure) and re-executes its own binary inside it with `ip netns exec`, marked by the
//! environment variable `HDPDK_TAP_CHILD`; the child runs EAL with `--vdev net_tap0,iface=...`.
mod common;

use std::io;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dpdk::{Burst, Eal, MacAddr, Mempool, Port, PortConfig};

const CHILD_ENV: &str = "HDPDK_TAP_CHILD";
const IFACE: &str = "hdtap0";
const ETHERTYPE: u16 = 0x88b5;

/// Deletes the namespace on drop, also when the test fails.
struct Netns(String);

impl Netns {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "{}-{:x}{:x}",
            common::name_prefix(),
            std::process::id(),
            nanos
        );
        run(&["ip", "netns", "add", &name]);
        let ns = Self(name);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        ns.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn exec(&self, cmd: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.0];
        full.extend_from_slice(cmd);
        run(&full);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn run(cmd: &[&str]) {
    let st = Command::new(cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(st.success(), "{cmd:?} failed: {st}");
}

#[test]
fn tap_in_netns() {
    if std::env::var_os(CHILD_ENV).is_some() {
        child();
        return;
    }
    let started = Instant::now();
    let ns = Netns::create();
    let mut proc = common::child::rerun_in_netns(&ns.0, "tap_in_netns")
        .env(CHILD_ENV, &ns.0)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn child in namespace");
    let status = common::child::wait_or_kill(&mut proc, Duration::from_secs(20), "child");
    assert!(status.success(), "child failed: {status}");
    let name = ns.0.clone();
    drop(ns);
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains(&name),
        "namespace {name} deleted by the guard"
    );
    println!("tap test done in {:?}", started.elapsed());
}

/// An AF_PACKET raw socket bound to one interface (the kernel side of the TAP).
struct PacketSocket {
    fd: libc::c_int,
    ifindex: libc::c_int,
}

impl PacketSocket {
    fn open(iface: &str) -> io::Result<Self> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2) call with constant arguments.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, libc::c_int::from(proto)) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let name = std::ffi::CString::new(iface).expect("no NUL");
        // SAFETY: `name` is a valid C string for the duration of the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as libc::c_int;
        let sock = Self { fd, ifindex };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: an all-zero sockaddr_ll is a valid value; the fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll and the length matches its size.
        let rc = unsafe {
            libc::bind(
                fd,
                std::ptr::addr_of!(sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: `tv` is a valid timeval and the length matches its size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(tv).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: an all-zero sockaddr_ll is a valid value; the fields are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: `frame` is valid for `frame.len()` bytes; `sll` is a valid address of the
        // given length.
        let n = unsafe {
            libc::sendto(
                self.fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::addr_of!(sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        assert_eq!(n as usize, frame.len());
        Ok(())
    }

    /// Receives one incoming frame (not our own outgoing ones); `None` on timeout.
    fn recv_incoming(&self) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        // SAFETY: an all-zero sockaddr_ll is a valid value to be overwritten by the kernel.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buf` is writable for its length; `sll`/`len` are valid out pointers.
        let n = unsafe {
            libc::recvfrom(
                self.fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                std::ptr::addr_of_mut!(sll).cast(),
                &mut len,
            )
        };
        if n < 0 || sll.sll_pkttype == libc::PACKET_OUTGOING {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // SAFETY: `fd` is an open socket owned by this value and closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// Interface index of `iface` in this namespace, 0 when there is no such interface.
fn if_index(iface: &str) -> u32 {
    let name = std::ffi::CString::new(iface).expect("no NUL");
    // SAFETY: `name` is a valid C string for the duration of the call.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

/// An attribute of the kernel interface from sysfs (`ip netns exec` mounts the namespace's).
fn sysfs(iface: &str, attr: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/{attr}"))
        .unwrap_or_else(|e| panic!("read {iface}/{attr}: {e}"))
        .trim()
        .to_owned()
}

fn tagged(seq: u32) -> Vec<u8> {
    let mut f = common::frame(seq, 98);
    f[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    f
}

/// Runs inside the namespace.
fn child() {
    let eal = Eal::init(common::eal_args("tap").vdev(&format!("net_tap0,iface={IFACE}")))
        .expect("EAL init with net_tap");
    let pool = Mempool::pktmbuf_pool("tap_pool", 1023, 0, Mempool::DEFAULT_DATA_ROOM).unwrap();
    let mut port = Port::by_name("net_tap0").expect("tap port");
    let info = port.info().unwrap();
    assert_eq!(info.driver_name, "net_tap");
    assert_ne!(info.if_index, 0);
    assert_eq!(info.if_index, if_index(IFACE), "interface index of the TAP");
    let conf = PortConfig {
        mtu: Some(1450),
        ..PortConfig::default()
    };
    let (mut rxq, mut txq) = port.configure(&conf, &pool).unwrap();
    assert_eq!(port.mtu().unwrap(), 1450);
    assert_eq!(
        sysfs(IFACE, "mtu"),
        "1450",
        "configured MTU on the kernel side"
    );
    port.start().unwrap();
    port.set_promiscuous(true).unwrap();
    assert!(port.is_promiscuous().unwrap());
    let mac = port.mac_address().unwrap();
    assert_ne!(mac.0, [0; 6]);
    assert!(port.link().unwrap().up, "TAP link up after start");
    println!(
        "{} up, mac {mac}, link {:?}",
        port.id(),
        port.link().unwrap()
    );
    let baseline = pool.in_use();

    let sock = PacketSocket::open(IFACE).expect("AF_PACKET socket on the TAP");

    // Kernel -> DPDK: send until it shows up (the TAP may take a moment to come up).
    let want = tagged(0x1111_0001);
    let mut got = None;
    let mut burst: Burst = Burst::new();
    let deadline = Instant::now() + Duration::from_secs(8);
    while got.is_none() && Instant::now() < deadline {
        sock.send(&want).expect("kernel-side send");
        let until = Instant::now() + Duration::from_millis(200);
        while got.is_none() && Instant::now() < until {
            rxq[0].rx_burst(&mut burst);
            // Anything else the kernel emits on the interface is dropped here.
            got = burst
                .drain()
                .find(|m| m.data() == want.as_slice())
                .map(|m| m.data().to_vec());
        }
    }
    assert_eq!(
        got.as_deref(),
        Some(want.as_slice()),
        "kernel frame received by rx_burst"
    );

    // DPDK -> kernel.
    let out = tagged(0x2222_0002);
    let mut seen = false;
    let deadline = Instant::now() + Duration::from_secs(8);
    while !seen && Instant::now() < deadline {
        let mut b: Burst<1> = Burst::new();
        b.push(pool.alloc_with(&out).unwrap()).unwrap();
        let r = txq[0].tx_burst_or_drop(&mut b);
        assert_eq!(r.sent + r.dropped, 1);
        let until = Instant::now() + Duration::from_millis(300);
        while !seen && Instant::now() < until {
            if let Some(f) = sock.recv_incoming() {
                seen = f == out;
            }
        }
    }
    assert!(seen, "frame sent by tx_burst read by the kernel side");

    // Drain whatever else arrived, then check for leaks.
    for _ in 0..10 {
        rxq[0].rx_burst(&mut burst);
        burst.clear();
    }
    assert_eq!(pool.in_use(), baseline, "no mbuf leaked");
    let s = port.stats().unwrap();
    assert!(s.ipackets >= 1 && s.opackets >= 1, "{s:?}");

    // MTU and MAC changes reach the kernel interface.
    port.set_mtu(1400).unwrap();
    assert_eq!(port.mtu().unwrap(), 1400);
    assert_eq!(sysfs(IFACE, "mtu"), "1400");
    let new_mac = MacAddr([0x02, 0, 0, 0xaa, 0xbb, 0xcc]);
    port.set_mac_address(new_mac).unwrap();
    assert_eq!(port.mac_address().unwrap(), new_mac);
    assert_eq!(sysfs(IFACE, "address"), new_mac.to_string());

    drop((rxq, txq, sock));
    port.stop().unwrap();
    // Dropping EAL while the port is still claimed stops and closes it (and rte_eal_cleanup
    // removes the vdevs): the TAP interface goes away before the process exits.
    assert_ne!(if_index(IFACE), 0);
    drop(eal);
    assert_eq!(if_index(IFACE), 0, "TAP closed by EAL shutdown");
    drop(port);
}
