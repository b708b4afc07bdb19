//! GRE-redirected packets: the GRE header, the WCCP redirect header (or its absence) and the
//! inner IPv4 packet's addresses, protocol and ports, read with `wire`'s checked views.

use wire::WccpPayload;

use super::tree::Node;

/// Renders a GRE packet (`payload` starts at the GRE header): the GRE header, the WCCP redirect
/// header (or its absence, WCCPv1 style), and the inner IPv4 addresses, protocol and ports.
///
/// Returns `Ok(None)` for GRE that is not WCCP (protocol other than 0x883E).
///
/// # Errors
/// The [`wire::Error`] of a truncated or malformed GRE/redirect/inner IPv4 header.
pub fn gre_node(payload: &[u8]) -> Result<Option<Node>, wire::Error> {
    let gre = wire::GrePacket::new_checked(payload)?;
    if gre.protocol() != wire::gre::PROTOCOL_WCCP {
        return Ok(None);
    }
    let mut c = vec![
        Node::leaf_text(
            "flags_version",
            "Flags and Version",
            gre.flags_version(),
            format!("0x{:04x}", gre.flags_version()),
        ),
        Node::leaf_text(
            "protocol",
            "Protocol Type",
            format!("0x{:04x}", gre.protocol()),
            format!("WCCP (0x{:04x})", gre.protocol()),
        ),
    ];
    let decap = wire::decap_wccp(payload)?;
    match decap {
        WccpPayload::Redirect { header, .. } => {
            use wire::RedirectFlags as F;
            let f = header.flags;
            let mut names = Vec::new();
            if f.contains(F::DYNAMIC) {
                names.push("dynamic service");
            }
            if f.contains(F::ALT_BUCKET_USED) {
                names.push("alternate bucket used");
            }
            if f.contains(F::UNAVAILABLE) {
                names.push("U: contents unavailable");
            }
            c.push(Node::obj(
                "redirect_header",
                "Redirect Header",
                vec![
                    Node::leaf("present", "Present", true),
                    Node::leaf_text(
                        "flags",
                        "Flags",
                        f.0,
                        format!("0x{:02x} ({})", f.0, names.join(", ")),
                    ),
                    Node::leaf("dynamic", "Dynamic Service", f.contains(F::DYNAMIC)),
                    Node::leaf(
                        "alternate_used",
                        "Alternate Bucket Used",
                        f.contains(F::ALT_BUCKET_USED),
                    ),
                    Node::leaf(
                        "unavailable",
                        "Contents Unavailable (U)",
                        f.contains(F::UNAVAILABLE),
                    ),
                    Node::leaf("service_id", "Service ID", header.service_id),
                    Node::leaf("alt_bucket", "Alternate Bucket", header.alt_bucket),
                    Node::leaf("primary_bucket", "Primary Bucket", header.primary_bucket),
                ],
            ));
        }
        WccpPayload::Ipv4(_) => {
            c.push(Node::obj(
                "redirect_header",
                "Redirect Header",
                vec![Node::leaf_text(
                    "present",
                    "Present",
                    false,
                    "no (WCCPv1 style: inner IPv4 follows GRE directly)",
                )],
            ));
        }
    }
    let inner = decap.inner();
    let ip = wire::Ipv4Packet::new_checked(inner)
        .map_err(|e| shift_error(e, payload.len() - inner.len()))?;
    let mut ic = vec![
        Node::leaf("src", "Source Address", ip.src().to_string()),
        Node::leaf("dst", "Destination Address", ip.dst().to_string()),
        Node::leaf_text(
            "protocol",
            "Protocol",
            ip.protocol(),
            match ip.protocol() {
                6 => "TCP (6)".to_owned(),
                17 => "UDP (17)".to_owned(),
                p => p.to_string(),
            },
        ),
        Node::leaf("ttl", "Time to Live", ip.ttl()),
    ];
    let first_fragment = ip.flags_frag() & wire::ipv4::FRAG_OFFSET_MASK == 0;
    let layer = match ip.protocol() {
        wire::ipv4::PROTOCOL_TCP => Some(wire::Layer::Tcp),
        wire::ipv4::PROTOCOL_UDP => Some(wire::Layer::Udp),
        _ => None,
    };
    if let Some(Ok((src_port, dst_port))) = layer
        .filter(|_| first_fragment)
        .map(|l| wire::l4::ports(ip.payload(), l))
    {
        ic.push(Node::leaf("src_port", "Source Port", src_port));
        ic.push(Node::leaf("dst_port", "Destination Port", dst_port));
    }
    c.push(Node::obj("inner", "Inner IPv4 Packet", ic));
    Ok(Some(Node::obj(
        "gre",
        "Generic Routing Encapsulation (WCCP)",
        c,
    )))
}

/// Makes an inner-header error's offset relative to the GRE header.
fn shift_error(e: wire::Error, by: usize) -> wire::Error {
    let by = u32::try_from(by).unwrap_or(u32::MAX);
    match e {
        wire::Error::Truncated {
            layer,
            field,
            index,
            need,
            have,
            offset,
        } => wire::Error::Truncated {
            layer,
            field,
            index,
            need,
            have,
            offset: offset.saturating_add(by),
        },
        wire::Error::Invalid {
            layer,
            field,
            index,
            offset,
            value,
        } => wire::Error::Invalid {
            layer,
            field,
            index,
            offset: offset.saturating_add(by),
            value,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_non_wccp_is_skipped_and_truncation_names_offset() {
        // GRE carrying plain IPv4 (0x0800) is not a WCCP redirect.
        assert_eq!(gre_node(&[0, 0, 0x08, 0x00, 0x45]).unwrap(), None);
        // WCCP GRE with a redirect header but a truncated inner IPv4 header.
        let e = gre_node(&[0, 0, 0x88, 0x3e, 0x01, 0x7b, 0, 0, 0x45, 0, 0]).unwrap_err();
        assert!(e.to_string().contains("offset 8"), "{e}");
    }
}
