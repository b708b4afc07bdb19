//! What `wccpd why` and `wccpd show` read from the router's status: the last message heard
//! from each cache (type and age), senders rejected before they became caches of the group
//! (MD5, group list) with their reason, and the service's security.

mod router_support;

use router_support::*;
use wccp_control::router::{NotUsable, ServiceConfig};

#[test]
fn last_message_type_and_age_per_cache() {
    let mut r = router_with(vec![ServiceConfig::new(web_cache_key())]);
    let mut c = FakeCache::web_cache(2);
    join(&mut r, &mut c, secs(1));
    let st = r.status_at(secs(3));
    let svc = &st.services[0];
    assert_eq!(svc.security, "none");
    let cs = &svc.caches[0];
    assert!(cs.usable);
    assert_eq!(cs.last_message, Some("HERE_I_AM"));
    assert_eq!(cs.last_message_ms_ago, Some(2000));
    // A SHUTDOWN says so.
    feed(&mut r, secs(4), c.shutdown());
    let cs = &r.status_at(secs(4)).services[0].caches[0];
    assert_eq!(cs.reason, Some(NotUsable::Shutdown));
    assert_eq!(cs.last_message, Some("HERE_I_AM (SHUTDOWN)"));
    assert_eq!(cs.last_message_ms_ago, Some(0));
}

#[test]
fn rejected_senders_are_listed_with_reason_and_message() {
    let mut svc = ServiceConfig::new(web_cache_key());
    svc.password = Some(b"s3cret".to_vec());
    svc.allowed_caches = vec!["10.200.0.0/28".parse().unwrap()];
    let mut r = router_with(vec![svc]);
    // Wrong password.
    let mut bad = FakeCache::web_cache(2);
    bad.password = Some(b"wrong".to_vec());
    feed(&mut r, secs(1), bad.here_i_am());
    // Right password, outside the group list (10.200.0.0/28 ends at .15).
    let mut outside = FakeCache::web_cache(20);
    outside.password = Some(b"s3cret".to_vec());
    feed(&mut r, secs(2), outside.here_i_am());
    let st = r.status_at(secs(3));
    let svc = &st.services[0];
    assert_eq!(svc.security, "md5");
    let find = |a| svc.caches.iter().find(|c| c.address == a).unwrap();
    let b = find(bad.addr);
    assert!(!b.usable);
    assert_eq!(b.reason, Some(NotUsable::Md5Failure));
    assert_eq!(b.last_message, Some("HERE_I_AM"));
    assert_eq!(b.last_message_ms_ago, Some(2000));
    let o = find(outside.addr);
    assert!(!o.usable);
    assert_eq!(o.reason, Some(NotUsable::NotAllowed));
    assert_eq!(o.last_message, Some("HERE_I_AM"));
    assert_eq!(o.last_message_ms_ago, Some(1000));
    // Counted as drops either way.
    assert_eq!(svc.counters.drops.get("security"), Some(&1));
    assert_eq!(svc.counters.drops.get("not_allowed"), Some(&1));
}
