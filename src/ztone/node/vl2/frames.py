"""Ethernet frames: from the host's virtual port out as FRAME/EXT_FRAME (or multicast),
and FRAME/EXT_FRAME from peers in to the port (``Switch::onLocalEthernet``,
PROTOCOL-NETWORK-SERVICE A.5.10-A.5.11, CORE §6.7-6.8).

Every frame passes the network's rule filter (:meth:`Network.filter`) in its
direction; a sender the network does not admit gets ERROR(NEED_MEMBERSHIP_CERTIFICATE)
and its frame waits for the credentials.
"""

from __future__ import annotations

from ztone.errors import MalformedPacket
from ztone.node.actions import DeliverFrame
from ztone.node.port import NodePort, Outcome
from ztone.node.vl1.path import Path
from ztone.node.vl1.peer import Peer
from ztone.node.vl2.credential_intake import add_credential, need_certificate, parse_com
from ztone.node.vl2.filter import Verdict
from ztone.node.vl2.multicast import announce_new_group, send_multicast
from ztone.node.wire.mac import BROADCAST, MAC
from ztone.node.wire.packet import IDX_FLAGS, Verb
from ztone.node.wire.verbs import in_re_payload
from ztone.node.wire.vl2_verbs import (
    ETHERTYPE_IPV6,
    EXT_FRAME_FLAG_ACK,
    MulticastGroup,
    arp_request_target,
    ndp_emulated_advertisement,
    parse_ext_frame,
    serialize_ext_frame,
    serialize_frame,
)

MAX_BRIDGE_SPAM = 32


def on_tap_frame(
    port: NodePort, now: int, nwid: int, src: int, dst: int, ethertype: int, payload: bytes
) -> None:
    """``Switch::onLocalEthernet`` (A.5.10)."""
    net = port.networks.get(nwid)
    if net is None or net.config is None:
        port.counters["tap_no_config"] += 1
        return
    c = net.config
    bridged = src != net.mac
    if bridged and not c.permits_bridging(port.address):
        port.counters["tap_not_a_bridge"] += 1
        return
    if (dst >> 40) & 0x01:  # multicast
        group = MulticastGroup(dst, 0)
        if dst == BROADCAST:
            target = arp_request_target(ethertype, payload)
            if target is not None:
                group = MulticastGroup(BROADCAST, target)
            elif not c.enable_broadcast:
                return
        elif ethertype == ETHERTYPE_IPV6 and c.ndp_emulation:
            fake = ndp_emulated_advertisement(nwid, int(port.address), list(c.static_ips), payload)
            if fake is not None:
                port.emit(DeliverFrame(nwid, fake[0], src, ETHERTYPE_IPV6, fake[1]))
                return
        if c.multicast_limit == 0:
            return
        if bridged and group not in net.bridged_groups:
            net.bridged_groups[group] = now
            announce_new_group(port, now, net, group)
        elif bridged:
            net.bridged_groups[group] = now
        if not net.filter(port, now, False, 0, src, dst, ethertype, payload):
            return
        send_multicast(port, now, net, 0, group, src if bridged else None, ethertype, payload)
        return
    if dst == net.mac:
        port.emit(DeliverFrame(nwid, src, dst, ethertype, payload))
        return
    target = net.mac_to_member(dst)
    if target is not None:
        if not net.filter(port, now, False, target, src, dst, ethertype, payload):
            return
        net.push_credentials_if_needed(port, now, target)
        if bridged:
            port.send(
                now,
                target,
                Verb.EXT_FRAME,
                serialize_ext_frame(nwid, 0, dst, src, ethertype, payload),
            )
        else:
            port.send(now, target, Verb.FRAME, serialize_frame(nwid, ethertype, payload))
        return
    if not net.filter(port, now, False, 0, src, dst, ethertype, payload):
        return
    bridge = net.bridge_routes.get(dst)
    recipients: list[int]
    if bridge is not None and bridge != port.address and net.is_active_bridge(bridge):
        recipients = [bridge]
    else:
        recipients = [b for b in net.active_bridges() if b != port.address][:MAX_BRIDGE_SPAM]
    for target in recipients:
        if net.filter(port, now, False, target, src, dst, ethertype, payload, no_tee=True):
            net.push_credentials_if_needed(port, now, target)
            port.send(
                now,
                target,
                Verb.EXT_FRAME,
                serialize_ext_frame(nwid, 0, dst, src, ethertype, payload),
            )


def do_frame(port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray) -> Outcome:
    # parse_frame(packet[28:]), field by field: this runs for every unicast frame
    if len(packet) < 38:
        raise MalformedPacket("truncated FRAME")
    nwid = int.from_bytes(packet[28:36], "big")
    net = port.networks.get(nwid)
    hops = packet[IDX_FLAGS] & 7
    if net is None:
        port.received(now, path, peer, hops, Verb.FRAME)
        return Outcome.DONE
    if not net.gate(port, now, peer):
        return need_certificate(port, now, path, peer, packet, nwid)
    if len(packet) > 38:
        ethertype = (packet[36] << 8) | packet[37]
        payload = bytes(packet[38:])
        address = int(peer.address)
        src = net.member_mac(address)
        if net.filter(port, now, True, address, src, net.mac, ethertype, payload):
            port.emit(DeliverFrame(nwid, src, net.mac, ethertype, payload))
    port.received(now, path, peer, hops, Verb.FRAME, trust=True)
    return Outcome.DONE


def do_ext_frame(port: NodePort, now: int, path: Path, peer: Peer, packet: bytearray) -> Outcome:
    ext = parse_ext_frame(packet[28:], parse_com)
    net = port.networks.get(ext.nwid)
    hops = packet[IDX_FLAGS] & 7
    if net is None:
        port.received(now, path, peer, hops, Verb.EXT_FRAME)
        return Outcome.DONE
    if ext.com is not None:
        add_credential(port, now, ext.com, int(peer.address))
    if not net.gate(port, now, peer):
        return need_certificate(port, now, path, peer, packet, ext.nwid)
    sender_mac = int(MAC.from_address(int(peer.address), net.nwid))
    deliver = False
    if ext.payload and ext.source not in (0, net.mac):
        verdict = net.filter(
            port,
            now,
            True,
            int(peer.address),
            ext.source,
            ext.destination,
            ext.ethertype,
            ext.payload,
        )
        if verdict == Verdict.SUPER_ACCEPT:
            deliver = True
        elif verdict == Verdict.ACCEPT:
            deliver = True
            if ext.source != sender_mac:
                if net.is_active_bridge(int(peer.address)):
                    net.learn_bridge_route(ext.source, int(peer.address))
                else:
                    deliver = False
                    port.counters["rx_bridging_not_allowed"] += 1
            if deliver and ext.destination != net.mac:
                if (ext.destination >> 40) & 1:
                    deliver = net.config is not None and net.config.multicast_limit > 0
                else:
                    deliver = net.is_active_bridge(int(port.address))
        if deliver:
            port.emit(
                DeliverFrame(net.nwid, ext.source, ext.destination, ext.ethertype, ext.payload)
            )
    if ext.flags & EXT_FRAME_FLAG_ACK:
        port.send_reply(
            now,
            peer,
            path,
            Verb.OK,
            in_re_payload(Verb.EXT_FRAME, int.from_bytes(packet[0:8], "big"))
            + ext.nwid.to_bytes(8, "big"),
        )
    port.received(now, path, peer, hops, Verb.EXT_FRAME, trust=True)
    return Outcome.DONE
