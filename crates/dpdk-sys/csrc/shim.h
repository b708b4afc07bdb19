/*
 * dpdk_shim_*: exported wrappers for the DPDK 22.11 static-inline functions, macros and
 * thread-local variables that Rust cannot reach through bindgen alone.
 * Each wrapper is a one-line call of the DPDK function with the same name minus the prefix;
 * the contract (pointer validity, threading) is the wrapped function's.
 */
#ifndef HDPDK_SHIM_H
#define HDPDK_SHIM_H
#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

/* TLS and macros. */
int dpdk_shim_errno(void);
unsigned int dpdk_shim_lcore_id(void);

/* Cycles. */
uint64_t dpdk_shim_rdtsc(void);
uint64_t dpdk_shim_get_tsc_hz(void);

/* Ethdev fast path. */
uint16_t dpdk_shim_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                                uint16_t nb_pkts);
uint16_t dpdk_shim_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                                uint16_t nb_pkts);

/* Ethdev macros built from RTE_BIT64(), which bindgen cannot evaluate. */
uint64_t dpdk_shim_eth_rss_ip(void);
uint64_t dpdk_shim_eth_rss_tcp(void);
uint64_t dpdk_shim_eth_rss_udp(void);

/* Mbuf. */
struct rte_mbuf *dpdk_shim_pktmbuf_alloc(struct rte_mempool *mp);
int dpdk_shim_pktmbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **mbufs,
                                 unsigned int count);
void dpdk_shim_pktmbuf_free(struct rte_mbuf *m);
char *dpdk_shim_pktmbuf_mtod(struct rte_mbuf *m);
char *dpdk_shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *dpdk_shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *dpdk_shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int dpdk_shim_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t dpdk_shim_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t dpdk_shim_pktmbuf_tailroom(const struct rte_mbuf *m);
int dpdk_shim_pktmbuf_is_contiguous(const struct rte_mbuf *m);
int dpdk_shim_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail);
uint16_t dpdk_shim_mbuf_refcnt_read(const struct rte_mbuf *m);

/* Ring of pointers. */
unsigned int dpdk_shim_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
                                          unsigned int n);
unsigned int dpdk_shim_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n);
unsigned int dpdk_shim_ring_count(const struct rte_ring *r);
unsigned int dpdk_shim_ring_free_count(const struct rte_ring *r);

/*
 * Creates two cross-connected net_ring ports named name_a and name_b (what A sends, B receives
 * and the reverse) over two new SP/SC rings of ring_size slots, using rte_eth_from_rings() of the
 * net_ring PMD that EAL already loaded as a plugin (found with dlopen(RTLD_NOLOAD): linking the
 * PMD directly would register the driver twice). Returns 0 and the port ids, or a negative
 * errno: -ENOTSUP when the PMD is not loaded, -EINVAL for bad names, else rte_errno.
 * The rings live until EAL cleanup.
 */
int dpdk_shim_eth_ring_pair(const char *name_a, const char *name_b, unsigned int ring_size,
                            uint16_t *port_a, uint16_t *port_b);

#endif
