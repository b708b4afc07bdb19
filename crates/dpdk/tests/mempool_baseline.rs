//! Mbuf ownership: the pool's in-use count returns to its baseline after RX->drop, RX->TX,
//! TX-queue-full, ring hand-off (ring full, ring dropped with contents), bulk allocation and
//! bulk frees, and burst edits; mbuf edits report errors as values. The inline Rust mbuf edits
//! leave exactly the same `data_off`/`data_len`/`pkt_len` as DPDK's own `rte_pktmbuf_*`
//! functions (through the shim) over random operation sequences, on single mbufs and chains;
//! clones (indirect mbufs) are neither direct nor editable, and `reset_offloads` keeps the
//! attached bit.
//!
//! EAL runs with `--no-pci` (the `EalArgs` default, also set by `common::eal_args`): vdevs only.
mod common;

use std::ptr::NonNull;
use std::time::Instant;

use dpdk::ring::{self, RingMode};
use dpdk::{Burst, Eal, Mbuf, MbufError, Mempool, MempoolError, Port, PortConfig};

use common::rng::Rng;

/// `(data_off, data_len, pkt_len, tailroom)` read through the shim and the raw struct, not
/// through the Rust accessors under test.
fn dpdk_view(m: &Mbuf) -> (u16, u16, u32, u16) {
    let p = m.as_ptr();
    // SAFETY: `p` is the valid mbuf owned by `m`, borrowed for the duration of the call; the
    // shim functions only read it, and the two fields are read by value.
    unsafe {
        (
            dpdk_sys::dpdk_shim_pktmbuf_headroom(p),
            (*p).data_len,
            (*p).pkt_len,
            dpdk_sys::dpdk_shim_pktmbuf_tailroom(p),
        )
    }
}

/// The same view through the Rust accessors.
fn rust_view(m: &Mbuf) -> (u16, u16, u32, u16) {
    (
        m.headroom(),
        u16::try_from(m.len()).unwrap(),
        m.pkt_len(),
        m.tailroom(),
    )
}

/// `m`'s `vlan_tci`, which no length edit may change (`Mbuf::grow_front` adds to the 8 octets
/// that hold it with `pkt_len` and `data_len`).
fn vlan_tci(m: &Mbuf) -> u16 {
    // SAFETY: reads the `vlan_tci` field of the valid mbuf owned by `m`.
    unsafe { (*m.as_ptr()).vlan_tci }
}

/// Sets `m`'s `vlan_tci`.
fn set_vlan_tci(m: &mut Mbuf, v: u16) {
    // SAFETY: writes the `vlan_tci` field of the valid mbuf owned exclusively by `m`.
    unsafe { (*m.as_ptr()).vlan_tci = v }
}

/// Start address of `m`'s data buffer.
fn buf_base(m: &Mbuf) -> usize {
    // SAFETY: reads the `buf_addr` field of the valid mbuf owned by `m`.
    unsafe { (*m.as_ptr()).buf_addr as usize }
}

/// One random edit applied with the Rust method to `r` and with DPDK's function (shim) to `d`;
/// checks that both accept or both refuse, that the returned region is the same, and fills
/// it with the same bytes.
fn random_edit(rng: &mut Rng, r: &mut Mbuf, d: &mut Mbuf) {
    // Mostly small lengths, sometimes beyond head- or tailroom.
    let n = if rng.below(4) == 0 {
        rng.below(2200) as u16
    } else {
        rng.below(80) as u16
    };
    let fill = rng.next() as u8;
    let dp = d.as_ptr();
    let (r_base, d_base) = (buf_base(r), buf_base(d));
    match rng.below(4) {
        0 => {
            // SAFETY: `dp` is the valid mbuf owned by `d`; DPDK checks the length itself.
            let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_prepend(dp, n) };
            match r.prepend(n) {
                Ok(bytes) => {
                    assert!(!p.is_null(), "prepend {n}: Rust accepted, DPDK refused");
                    assert_eq!(bytes.as_ptr() as usize - r_base, p as usize - d_base);
                    assert_eq!(bytes.len(), usize::from(n));
                    bytes.fill(fill);
                    d.data_mut()[..usize::from(n)].fill(fill);
                }
                Err(e) => {
                    assert!(
                        p.is_null(),
                        "prepend {n}: Rust refused ({e}), DPDK accepted"
                    );
                    assert!(matches!(e, MbufError::NoHeadroom { need, .. } if need == n));
                }
            }
        }
        1 => {
            // SAFETY: as above.
            let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_adj(dp, n) };
            match r.trim_front(n) {
                Ok(()) => assert!(!p.is_null(), "adj {n}: Rust accepted, DPDK refused"),
                Err(e) => {
                    assert!(p.is_null(), "adj {n}: Rust refused ({e}), DPDK accepted");
                    assert!(matches!(e, MbufError::TooShort { need, .. } if need == n));
                }
            }
        }
        2 => {
            // SAFETY: as above.
            let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_append(dp, n) };
            match r.append(n) {
                Ok(bytes) => {
                    assert!(!p.is_null(), "append {n}: Rust accepted, DPDK refused");
                    assert_eq!(bytes.as_ptr() as usize - r_base, p as usize - d_base);
                    assert_eq!(bytes.len(), usize::from(n));
                    bytes.fill(fill);
                    let len = d.len();
                    d.data_mut()[len - usize::from(n)..].fill(fill);
                }
                Err(e) => {
                    assert!(p.is_null(), "append {n}: Rust refused ({e}), DPDK accepted");
                    assert!(matches!(e, MbufError::NoTailroom { need, .. } if need == n));
                }
            }
        }
        _ => {
            // SAFETY: as above.
            let rc = unsafe { dpdk_sys::dpdk_shim_pktmbuf_trim(dp, n) };
            match r.trim_back(n) {
                Ok(()) => assert_eq!(rc, 0, "trim {n}: Rust accepted, DPDK refused"),
                Err(e) => {
                    assert_ne!(rc, 0, "trim {n}: Rust refused ({e}), DPDK accepted");
                    assert!(matches!(e, MbufError::TooShort { need, .. } if need == n));
                }
            }
        }
    }
    assert_eq!(rust_view(r), dpdk_view(d), "after an edit of {n}");
    assert_eq!(rust_view(r), rust_view(d));
    assert_eq!(r.data(), d.data());
    // SAFETY: `d` owns a valid mbuf; `rte_pktmbuf_mtod` only computes the data pointer.
    let mtod = unsafe { dpdk_sys::dpdk_shim_pktmbuf_mtod(d.as_ptr()) };
    assert_eq!(mtod.cast_const().cast::<u8>(), d.data().as_ptr());
}

/// Random sequences of prepend/trim_front/append/trim_back: the Rust edits leave the same
/// fields, regions and bytes as DPDK's functions.
fn mbuf_edits_match_dpdk(pool: &Mempool) {
    let mut rng = Rng(0x005e_ed0f_d9d1_2211);
    for _ in 0..300 {
        let start = common::frame(rng.next() as u32, 60 + rng.below(200));
        let mut r = pool.alloc_with(&start).unwrap();
        let mut d = pool.alloc_with(&start).unwrap();
        assert_eq!(rust_view(&r), dpdk_view(&d));
        let tci = rng.next() as u16 | 0x8001;
        set_vlan_tci(&mut r, tci);
        set_vlan_tci(&mut d, tci);
        for _ in 0..40 {
            random_edit(&mut rng, &mut r, &mut d);
            assert_eq!((vlan_tci(&r), vlan_tci(&d)), (tci, tci));
        }
    }

    // Chains: front edits behave as DPDK's (first segment); end edits refuse and change nothing.
    for round in 0..50 {
        let mut r = pool.alloc_with(&common::frame(round, 100)).unwrap();
        let mut d = pool.alloc_with(&common::frame(round, 100)).unwrap();
        for head in [&mut r, &mut d] {
            let tail = pool.alloc_with(&common::frame(round + 1, 80)).unwrap();
            // SAFETY: both are valid single-segment mbufs; on success the head owns the tail
            // (freed with the chain), which is why the tail leaves Rust through `into_raw`.
            let rc = unsafe {
                dpdk_sys::dpdk_shim_pktmbuf_chain(head.as_ptr(), tail.into_raw().as_ptr())
            };
            assert_eq!(rc, 0);
            set_vlan_tci(head, 0xffff);
        }
        assert_eq!((r.nb_segs(), r.pkt_len(), r.len()), (2, 180, 100));
        assert!(!r.is_contiguous() && !r.is_editable() && r.is_direct());
        for _ in 0..20 {
            let n = rng.below(150) as u16;
            let before = rust_view(&r);
            assert_eq!(
                r.append(n).unwrap_err(),
                MbufError::Segmented { nb_segs: 2 }
            );
            assert_eq!(
                r.trim_back(n).unwrap_err(),
                MbufError::Segmented { nb_segs: 2 }
            );
            assert_eq!(rust_view(&r), before, "refused edits change nothing");
            let dp = d.as_ptr();
            if rng.below(2) == 0 {
                // SAFETY: `dp` is the valid head of the chain owned by `d`.
                let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_prepend(dp, n) };
                assert_eq!(r.prepend(n).is_ok(), !p.is_null(), "chain prepend {n}");
                assert_eq!((vlan_tci(&r), vlan_tci(&d)), (0xffff, 0xffff));
            } else {
                // SAFETY: as above.
                let p = unsafe { dpdk_sys::dpdk_shim_pktmbuf_adj(dp, n) };
                assert_eq!(r.trim_front(n).is_ok(), !p.is_null(), "chain adj {n}");
            }
            assert_eq!(rust_view(&r), dpdk_view(&d));
        }
    }
}

/// Reference counts, direct/indirect, editability, offload reset, port, headroom constant.
fn mbuf_metadata(pool: &Mempool) {
    assert_eq!(Mbuf::HEADROOM, 128);
    assert_eq!(dpdk::mbuf::HEADROOM, Mbuf::HEADROOM);
    let mut o = pool.alloc_with(&common::frame(3, 64)).unwrap();
    assert_eq!(o.headroom(), Mbuf::HEADROOM);
    assert_eq!((o.refcnt(), o.nb_segs()), (1, 1));
    assert!(o.is_direct() && o.is_editable());
    o.set_port(7);
    assert_eq!(o.port(), 7);

    // A clone shares the data: the original's reference count is 2, the clone is indirect.
    // SAFETY: `o` owns a valid mbuf whose `pool` field names its (live) pool;
    // `rte_pktmbuf_clone` returns a new indirect mbuf or null. Neither handle edits the data
    // while both exist (the `from_raw` contract for shared buffers).
    let c = unsafe {
        let raw = dpdk_sys::rte_pktmbuf_clone(o.as_ptr(), (*o.as_ptr()).pool);
        Mbuf::from_raw(NonNull::new(raw).expect("clone"))
    };
    let mut c = c;
    // SAFETY: reads the reference count of the valid mbuf owned by `o`.
    assert_eq!(o.refcnt(), unsafe {
        dpdk_sys::dpdk_shim_mbuf_refcnt_read(o.as_ptr())
    });
    assert_eq!(o.refcnt(), 2);
    assert!(o.is_direct() && !o.is_editable(), "shared buffer");
    assert!(!c.is_direct() && !c.is_editable(), "indirect");
    assert_eq!(c.refcnt(), 1);
    assert_eq!(c.data(), o.data());

    // reset_offloads clears RX flags and the packet type but keeps the attached bit.
    let rx_flags =
        u64::from(dpdk_sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD | dpdk_sys::RTE_MBUF_F_RX_RSS_HASH);
    for m in [&mut o, &mut c] {
        // SAFETY: `m` owns a valid mbuf; plain field writes through its pointer, no other
        // reference to the header exists during them.
        unsafe {
            (*m.as_ptr()).ol_flags |= rx_flags;
            (*m.as_ptr()).__bindgen_anon_1.packet_type = dpdk_sys::RTE_PTYPE_L3_IPV4;
        }
        assert_eq!(m.ol_flags() & rx_flags, rx_flags);
        assert_eq!(m.packet_type(), dpdk_sys::RTE_PTYPE_L3_IPV4);
        m.reset_offloads();
        assert_eq!(m.packet_type(), 0);
    }
    assert_eq!(o.ol_flags(), 0);
    assert_eq!(c.ol_flags(), dpdk_sys::RTE_MBUF_F_INDIRECT);
    assert!(!c.is_direct());
    drop(c); // detaches: the original is the only user again
    assert_eq!(o.refcnt(), 1);
    assert!(o.is_editable());
}

/// Bulk allocation into a burst and bulk frees.
fn bulk_alloc_and_free(pool: &Mempool) {
    let baseline = pool.in_use();
    let mut b: Burst<32> = Burst::new();
    pool.alloc_bulk(&mut b, 20).unwrap();
    assert_eq!(b.len(), 20);
    assert_eq!(pool.in_use(), baseline + 20);
    assert!(b
        .iter()
        .all(|m| m.is_empty() && m.headroom() == Mbuf::HEADROOM && m.is_editable()));
    pool.alloc_bulk(&mut b, 12).unwrap();
    assert!(b.is_full());
    assert!(matches!(
        pool.alloc_bulk(&mut b, 1),
        Err(MempoolError::NoRoom { need: 1, spare: 0 })
    ));
    pool.alloc_bulk(&mut b, 0).unwrap();
    dpdk::mbuf::free_bulk(&mut b);
    assert!(b.is_empty());
    assert_eq!(pool.in_use(), baseline, "after free_bulk");
    pool.alloc_bulk(&mut b, 32).unwrap();
    b.free_all();
    pool.alloc_bulk(&mut b, 32).unwrap();
    // Half rejected by retain_mut (freed in one call), the rest dropped with a partial drain.
    let mut i = 0;
    b.retain_mut(|_| {
        i += 1;
        i % 2 == 0
    });
    assert_eq!(b.len(), 16);
    assert_eq!(pool.in_use(), baseline + 16);
    let mut it = b.drain();
    drop(it.next());
    drop(it);
    assert_eq!(
        pool.in_use(),
        baseline,
        "after retain_mut and a partial drain"
    );
    // drain_each hands every mbuf over once, in order, and leaves the burst empty.
    fill(pool, &mut b, 5, 40);
    let mut seen = Vec::new();
    b.drain_each(|i, m| seen.push((i, m.data().to_vec())));
    assert!(b.is_empty());
    let want: Vec<_> = (0..5)
        .map(|i| (i, common::frame(40 + i as u32, 64)))
        .collect();
    assert_eq!(seen, want);
    assert_eq!(pool.in_use(), baseline, "after drain_each");
}

fn fill<const N: usize>(pool: &Mempool, burst: &mut Burst<N>, n: usize, seed: u32) {
    for i in 0..n {
        let f = common::frame(seed + i as u32, 64);
        burst.push(pool.alloc_with(&f).unwrap()).unwrap();
    }
}

fn mbuf_edits(pool: &Mempool) {
    let mut m: Mbuf = pool.alloc_with(&common::frame(7, 64)).unwrap();
    assert_eq!(m.len(), 64);
    assert!(m.is_contiguous());
    let head = m.headroom();
    assert_eq!(head, 128, "RTE_PKTMBUF_HEADROOM");
    assert_eq!(
        m.prepend(head + 1).unwrap_err(),
        MbufError::NoHeadroom {
            need: head + 1,
            have: head
        }
    );
    assert_eq!(m.len(), 64, "failed prepend leaves the mbuf unchanged");
    m.prepend(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(m.len(), 68);
    assert_eq!(&m.data()[..4], &[1, 2, 3, 4]);
    assert_eq!(&m.data()[4..], &common::frame(7, 64)[..]);
    m.trim_front(4).unwrap();
    assert_eq!(m.data(), &common::frame(7, 64)[..]);
    assert!(matches!(
        m.trim_front(65),
        Err(MbufError::TooShort { need: 65, .. })
    ));
    let tail = m.tailroom();
    assert!(matches!(
        m.append(tail + 1),
        Err(MbufError::NoTailroom { .. })
    ));
    m.append(2).unwrap().copy_from_slice(&[0xaa, 0xbb]);
    assert_eq!(&m.data()[64..], &[0xaa, 0xbb]);
    assert_eq!(m.tailroom(), tail - 2);
    m.trim_back(2).unwrap();
    assert!(matches!(
        m.trim_back(65),
        Err(MbufError::TooShort { need: 65, .. })
    ));
    assert_eq!(m.len(), 64);
    m.data_mut()[0] = 0x42;
    assert_eq!(m.as_ref()[0], 0x42);

    // into_raw / from_raw round trip keeps ownership explicit.
    let raw = m.into_raw();
    // SAFETY: `raw` came from `into_raw` just above and is not used elsewhere.
    let m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.data()[0], 0x42);
}

#[test]
fn mempool_in_use_returns_to_baseline() {
    let started = Instant::now();
    let eal = Eal::init(common::eal_args("mempool").vdev("net_null0,size=64")).expect("EAL init");
    let pool = Mempool::pktmbuf_pool("mb_pool", 4095, 0, Mempool::DEFAULT_DATA_ROOM).unwrap();
    assert!(matches!(
        Mempool::pktmbuf_pool("mb_pool", 63, 0, Mempool::DEFAULT_DATA_ROOM),
        Err(dpdk::MempoolError::Exists(_))
    ));
    let (mut a, mut b) = Port::ring_pair("mb_a", "mb_b", 1024).unwrap();
    let (mut fa, mut fb) = Port::ring_pair("full_a", "full_b", 64).unwrap();
    let mut null = Port::by_name("net_null0").unwrap();
    let conf = PortConfig::default();
    let (_a_rx, mut a_tx) = a.configure(&conf, &pool).unwrap();
    let (mut b_rx, mut b_tx) = b.configure(&conf, &pool).unwrap();
    let (_fa_rx, mut fa_tx) = fa.configure(&conf, &pool).unwrap();
    let (mut fb_rx, _fb_tx) = fb.configure(&conf, &pool).unwrap();
    let (mut null_rx, mut null_tx) = null.configure(&conf, &pool).unwrap();
    for p in [&mut a, &mut b, &mut fa, &mut fb, &mut null] {
        p.start().unwrap();
    }
    let a_rx = &mut { _a_rx }[0];
    let baseline = pool.in_use();
    assert_eq!(baseline, 0, "no mbuf allocated before traffic");
    let total = pool.in_use() + pool.avail();

    // Mbuf edits and explicit raw hand-off.
    mbuf_edits(&pool);
    assert_eq!(pool.in_use(), baseline, "after mbuf edits");
    mbuf_edits_match_dpdk(&pool);
    assert_eq!(pool.in_use(), baseline, "after random edits and chains");
    mbuf_metadata(&pool);
    assert_eq!(pool.in_use(), baseline, "after clones");
    bulk_alloc_and_free(&pool);
    assert_eq!(pool.in_use(), baseline, "after bulk alloc/free");

    // RX -> drop.
    let mut burst: Burst = Burst::new();
    fill(&pool, &mut burst, 32, 0);
    assert_eq!(pool.in_use(), baseline + 32);
    assert_eq!(a_tx[0].tx_burst(&mut burst), 32);
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), baseline + 32, "mbufs sit in the ring");
    assert_eq!(b_rx[0].rx_burst(&mut burst), 32);
    assert_eq!(burst.as_slice()[5].data(), &common::frame(5, 64)[..]);
    drop(burst);
    assert_eq!(pool.in_use(), baseline, "after RX->drop");

    // RX -> TX (B receives and sends back to A, A drops).
    let mut burst: Burst = Burst::new();
    fill(&pool, &mut burst, 20, 100);
    assert_eq!(a_tx[0].tx_burst(&mut burst), 20);
    assert_eq!(b_rx[0].rx_burst(&mut burst), 20);
    assert_eq!(b_tx[0].tx_burst(&mut burst), 20);
    assert!(burst.is_empty());
    assert_eq!(a_rx.rx_burst(&mut burst), 20);
    // Drop half through retain_mut, the rest through a partly consumed drain.
    burst.retain_mut(|m| m.data()[17] % 2 == 0);
    assert_eq!(burst.len(), 10);
    let first = burst.drain().next().unwrap();
    assert_eq!(first.data(), &common::frame(100, 64)[..]);
    drop(first);
    assert!(burst.is_empty());
    assert_eq!(pool.in_use(), baseline, "after RX->TX");

    // RX -> TX into a null sink.
    let mut burst: Burst = Burst::new();
    assert_eq!(
        null_rx[0].rx_burst(&mut burst),
        32,
        "net_null always has packets"
    );
    assert_eq!(burst.as_slice()[0].len(), 64);
    let out = null_tx[0].tx_burst_or_drop(&mut burst);
    assert_eq!(out.sent + out.dropped, 32);
    assert_eq!(pool.in_use(), baseline, "after null RX->TX");

    // TX queue full: the ring behind fa/fb holds 64; tx_burst leaves the rest in the burst.
    let mut queued = 0;
    let mut burst: Burst = Burst::new();
    for round in 0..3 {
        fill(&pool, &mut burst, 32, 1000 + round * 32);
        queued += fa_tx[0].tx_burst(&mut burst);
        burst.clear();
    }
    assert_eq!(queued, 64, "ring capacity");
    fill(&pool, &mut burst, 32, 2000);
    let out = fa_tx[0].tx_burst_or_drop(&mut burst);
    assert_eq!((out.sent, out.dropped), (0, 32));
    assert!(burst.is_empty());
    assert_eq!(
        pool.in_use(),
        baseline + 64,
        "only the queued mbufs are in use"
    );
    // Unsent mbufs returned in the burst and dropped with it.
    fill(&pool, &mut burst, 10, 3000);
    assert_eq!(fa_tx[0].tx_burst(&mut burst), 0);
    assert_eq!(burst.len(), 10, "unsent tail stays with the caller");
    drop(burst);
    let mut burst: Burst<64> = Burst::new();
    assert_eq!(fb_rx[0].rx_burst(&mut burst), 64);
    assert_eq!(burst.as_slice()[0].data(), &common::frame(1000, 64)[..]);
    drop(burst);
    assert_eq!(pool.in_use(), baseline, "after TX-queue-full");

    // Ring hand-off: SP/SC ring of 16, full ring returns the unsent tail, a dropped ring frees
    // its contents.
    let (mut prod, mut cons) =
        ring::create("mb_ring", 16, RingMode::SingleProducerSingleConsumer).unwrap();
    assert!(prod.try_clone().is_none(), "SP ring has one producer");
    let mut burst: Burst = Burst::new();
    fill(&pool, &mut burst, 24, 4000);
    assert_eq!(prod.enqueue_burst(&mut burst), 16);
    assert_eq!(burst.len(), 8);
    assert_eq!(prod.len(), 16);
    assert_eq!(prod.free_count(), 0);
    drop(burst);
    let mut out: Burst<4> = Burst::new();
    assert_eq!(cons.dequeue_burst(&mut out), 4);
    assert_eq!(out.as_slice()[0].data(), &common::frame(4000, 64)[..]);
    let handed = std::thread::spawn(move || out.len()); // Burst is Send.
    assert_eq!(handed.join().unwrap(), 4);
    assert_eq!(pool.in_use(), baseline + 12);
    drop((prod, cons));
    assert_eq!(pool.in_use(), baseline, "after ring drop with contents");

    let (mp, mc) = ring::create("mb_ring2", 8, RingMode::MultiProducerMultiConsumer).unwrap();
    assert!(mp.try_clone().is_some() && mc.try_clone().is_some());

    // Exhaustion is an error value.
    let mut held = Vec::new();
    while let Ok(m) = pool.alloc() {
        held.push(m);
    }
    assert_eq!(held.len() as u32, total);
    assert!(matches!(pool.alloc(), Err(dpdk::MempoolError::Exhausted)));
    let mut none: Burst<4> = Burst::new();
    assert!(matches!(
        pool.alloc_bulk(&mut none, 1),
        Err(MempoolError::Exhausted)
    ));
    assert!(none.is_empty(), "a failed bulk allocation fills nothing");
    drop(held);
    assert_eq!(pool.in_use(), baseline, "after exhaustion");

    // Port control: stats, MAC, promiscuous, link.
    let s = a.stats().unwrap();
    assert_eq!(s.opackets, 52);
    assert_eq!(null.mac_address().unwrap().0.len(), 6);
    null.set_promiscuous(true).unwrap();
    assert!(null.is_promiscuous().unwrap());
    // net_null cannot leave promiscuous mode: that comes back as an error value.
    assert!(matches!(
        null.set_promiscuous(false),
        Err(dpdk::EthError::NotSupported { .. })
    ));
    assert!(null.link().unwrap().up);

    println!("scenarios done in {:?}", started.elapsed());
    drop(eal);
}
