//! Classic pcap files: read frames, write Ethernet/IPv4/UDP frames (test and decode tooling).
