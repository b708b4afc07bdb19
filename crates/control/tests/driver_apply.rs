//! `DriverHandle::apply` on a real driver (UDP on loopback): the closure changes the machine on
//! the driver thread, and what the machine then outputs is handled at once, not at the next
//! datagram or timer.

use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use wccp_control::driver::{Driver, DriverOptions, LatestTables};
use wccp_control::router::{Router, RouterConfig, ServiceConfig};
use wccp_control::{Instant, ServiceKey};

const WEB: ServiceKey = ServiceKey {
    dynamic: false,
    id: 0,
};

fn config(closed: bool) -> RouterConfig {
    let mut s = ServiceConfig::web_cache();
    s.closed = closed;
    RouterConfig {
        addresses: vec![Ipv4Addr::LOCALHOST],
        router_id: None,
        services: vec![s],
    }
}

#[test]
fn apply_reconfigures_on_the_driver_thread_and_publishes_at_once() {
    let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = probe.local_addr().expect("address").port();
    drop(probe);
    let tables = Arc::new(LatestTables::new());
    let options = DriverOptions {
        port,
        // Nothing else would wake the driver for seconds (its readers notice the stop flag
        // as late, so not longer).
        max_wait: Duration::from_secs(3),
        ..DriverOptions::default()
    };
    let router = Router::new(config(true)).expect("config");
    let (driver, handle) = Driver::bind(router, options, tables.clone()).expect("driver");
    let thread = std::thread::spawn(move || driver.run());
    let deadline = StdInstant::now() + Duration::from_secs(5);
    while tables.get(WEB).is_none() {
        assert!(StdInstant::now() < deadline, "the closed table never came");
        std::thread::sleep(Duration::from_millis(10));
    }

    let started = StdInstant::now();
    let summary = handle
        .apply(Duration::from_secs(2), |r: &mut Router, stats| {
            r.reconfigure(Instant(stats.uptime_ms), config(false))
        })
        .expect("the driver answers")
        .expect("applied");
    assert_eq!(summary.to_string(), "standard 0: closed");
    // The withdrawal reaches the publisher well before the driver's 3 s wait ends.
    while tables.get(WEB).is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "table not withdrawn"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let services = handle
        .query(Duration::from_secs(2), |r: &Router, _| {
            r.status().services.len()
        })
        .expect("query");
    assert_eq!(services, 1);
    handle.stop();
    thread.join().expect("driver thread");
}
