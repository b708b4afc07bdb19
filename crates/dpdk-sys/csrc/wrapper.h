/* The one header bindgen reads: the DPDK APIs wccpd uses, plus the shim declarations. */
#ifndef HDPDK_WRAPPER_H
#define HDPDK_WRAPPER_H
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
/* Packet capture by secondary processes (dpdk-dumpcap): rte_pdump_init / rte_pdump_uninit. */
#include <rte_pdump.h>
#include "shim.h"
#endif
