/* See shim.h: thin exported wrappers, no logic of their own. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
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

uint64_t dpdk_shim_eth_rss_ip(void) { return RTE_ETH_RSS_IP; }
uint64_t dpdk_shim_eth_rss_tcp(void) { return RTE_ETH_RSS_TCP; }
uint64_t dpdk_shim_eth_rss_udp(void) { return RTE_ETH_RSS_UDP; }

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
int dpdk_shim_pktmbuf_chain(struct rte_mbuf *head, struct rte_mbuf *tail) { return rte_pktmbuf_chain(head, tail); }
uint16_t dpdk_shim_mbuf_refcnt_read(const struct rte_mbuf *m) { return rte_mbuf_refcnt_read(m); }

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

typedef int (*eth_from_rings_fn)(const char *, struct rte_ring *const[], const unsigned int,
                                 struct rte_ring *const[], const unsigned int, const unsigned int);

int dpdk_shim_eth_ring_pair(const char *name_a, const char *name_b, unsigned int ring_size,
                            uint16_t *port_a, uint16_t *port_b)
{
    void *pmd = dlopen("librte_net_ring.so.23", RTLD_NOW | RTLD_NOLOAD);
    if (pmd == NULL)
        return -ENOTSUP;
    eth_from_rings_fn from_rings = (eth_from_rings_fn)dlsym(pmd, "rte_eth_from_rings");
    if (from_rings == NULL) {
        dlclose(pmd);
        return -ENOTSUP;
    }
    char ab[RTE_RING_NAMESIZE], ba[RTE_RING_NAMESIZE];
    if (snprintf(ab, sizeof(ab), "%s>%s", name_a, name_b) >= (int)sizeof(ab) ||
        snprintf(ba, sizeof(ba), "%s>%s", name_b, name_a) >= (int)sizeof(ba)) {
        dlclose(pmd);
        return -EINVAL;
    }
    unsigned int flags = RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ;
    struct rte_ring *r_ab = rte_ring_create(ab, ring_size, (int)rte_socket_id(), flags);
    if (r_ab == NULL) {
        dlclose(pmd);
        return -rte_errno;
    }
    struct rte_ring *r_ba = rte_ring_create(ba, ring_size, (int)rte_socket_id(), flags);
    if (r_ba == NULL) {
        int e = rte_errno;
        rte_ring_free(r_ab);
        dlclose(pmd);
        return -e;
    }
    int a = from_rings(name_a, &r_ba, 1, &r_ab, 1, rte_socket_id());
    int b = a < 0 ? a : from_rings(name_b, &r_ab, 1, &r_ba, 1, rte_socket_id());
    /* The PMD stays loaded by EAL; drop only our extra reference. */
    dlclose(pmd);
    if (a < 0 || b < 0) {
        /* Port A (if created) keeps pointers to the rings, so they are not freed here. */
        return -(rte_errno ? rte_errno : EINVAL);
    }
    *port_a = (uint16_t)a;
    *port_b = (uint16_t)b;
    return 0;
}
