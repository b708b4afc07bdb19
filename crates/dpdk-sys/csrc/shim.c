/* See shim.h: thin exported wrappers, no logic of their own. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include "shim.h"

int dpdk_shim_errno(void) { return rte_errno; }
unsigned int dpdk_shim_lcore_id(void) { return rte_lcore_id(); }

uint64_t dpdk_shim_rdtsc(void) { return rte_rdtsc(); }
uint64_t dpdk_shim_get_tsc_hz(void) { return rte_get_tsc_hz(); }

uint16_t dpdk_shim_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                                uint16_t nb_pkts)
{
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t dpdk_shim_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                                uint16_t nb_pkts)
{
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *dpdk_shim_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int dpdk_shim_pktmbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **mbufs,
                                 unsigned int count)
{
    return rte_pktmbuf_alloc_bulk(pool, mbufs, count);
}

void dpdk_shim_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
char *dpdk_shim_pktmbuf_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, char *); }
char *dpdk_shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }
char *dpdk_shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }
char *dpdk_shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }
int dpdk_shim_pktmbuf_trim(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_trim(m, len); }
uint16_t dpdk_shim_pktmbuf_headroom(const struct rte_mbuf *m) { return rte_pktmbuf_headroom(m); }
uint16_t dpdk_shim_pktmbuf_tailroom(const struct rte_mbuf *m) { return rte_pktmbuf_tailroom(m); }
int dpdk_shim_pktmbuf_is_contiguous(const struct rte_mbuf *m) { return rte_pktmbuf_is_contiguous(m); }

unsigned int dpdk_shim_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
                                          unsigned int n)
{
    return rte_ring_enqueue_burst(r, obj_table, n, NULL);
}

unsigned int dpdk_shim_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n)
{
    return rte_ring_dequeue_burst(r, obj_table, n, NULL);
}

unsigned int dpdk_shim_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }
unsigned int dpdk_shim_ring_free_count(const struct rte_ring *r) { return rte_ring_free_count(r); }
