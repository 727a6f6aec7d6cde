/*
 * The native send path's share of the TAP offloads (included by _speedups.c inside
 * the Linux data plane, just before dp_tx_frame).
 *
 * With TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, osdep/linux/tun.py) a read
 * from the TAP may start with a virtio_net_hdr that asks for work:
 *
 *   0 flags u8 (1 NEEDS_CSUM) | 1 gso_type u8 (0 none, 1 TCPV4, 4 TCPV6) | 2 hdr_len
 *   u16 | 4 gso_size u16 | 6 csum_start u16 | 8 csum_offset u16  (little-endian)
 *
 * dp_tso_tx() takes such a read (in self->frame) for a send-granted member:
 *
 * - no GSO: the checksum at csum_start + csum_offset (from the Ethernet header) is
 *   finished when NEEDS_CSUM says so (complemented sum from csum_start to the end, 0
 *   written as 0xFFFF; gro.complete_checksum), and the frame goes out as any other;
 * - TCP GSO: the super-packet is cut into the segments the kernel's GSO would send,
 *   exactly as src/ztone/osdep/linux/tso.py does (the reference; its docstring gives
 *   the layout and the rules: IPv4 total length, identification + k, header
 *   checksum; IPv6 payload length; TCP seq + k * gso_size, FIN/PSH on the last
 *   segment only, CWR on the first only, the full checksum), and every segment is
 *   sealed and sent as a FRAME by dp_tx_frame, in order.
 *
 * The cut is made in place: segment k's virtio_net_hdr (zeros) and headers are
 * written just before its data, over data of segments already sealed (dp_tx_frame
 * copies each into its own buffer first), so no segment is copied twice.
 *
 * It returns 0, and leaves the read untouched, whenever dp_tx_frame would not send
 * the frame or its first (largest) segment: no live send grant for the Ethernet
 * addresses, ethertype not granted, a segment over the grant's MTU, or anything the
 * reference refuses as malformed. The read then goes back to the general path as
 * read, and tso.py makes the same segments there (or drops and counts the frame).
 */
#ifndef ZTONE_DP_TSO_H
#define ZTONE_DP_TSO_H

#define DP_TSO_VNET 10
#define DP_TSO_NEEDS_CSUM 1
#define DP_TSO_TCPV4 1
#define DP_TSO_TCPV6 4
#define DP_TSO_MAX_FRAME (14 + 65535) /* tso.MAX_FRAME */
#define DP_TSO_MAX_SEGMENT 10000      /* tso.MAX_SEGMENT */
#define DP_TSO_MAX_HEADERS (14 + 60 + 60)

static int dp_tx_frame(DataplaneObject *self, uint64_t nwid, int vnet, const uint8_t *f,
                       size_t n, int64_t now);

static inline unsigned dp_tso_be16(const uint8_t *p)
{
    return (unsigned)((p[0] << 8) | p[1]);
}

static inline void dp_tso_put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The live send grant dp_tx_frame would use for a frame with Ethernet header eth and
   a payload of plen bytes (addresses, expiry, ethertype, MTU, packet size), or NULL. */
static struct dp_send *dp_tso_grant(DataplaneObject *self, uint64_t nwid, const uint8_t *eth,
                                    size_t plen, int64_t now)
{
    uint16_t ethertype = (uint16_t)((eth[12] << 8) | eth[13]);
    size_t max_len;
    int i, j;

    for (i = 0; i < self->n_sends; i++) {
        struct dp_send *g = &self->sends[i];
        int found = g->all_ethertypes;
        if (g->nwid != nwid || memcmp(g->dst, eth, 6) != 0 || memcmp(g->src, eth + 6, 6) != 0 ||
            g->expires <= now)
            continue;
        for (j = 0; j < g->n_ethertypes; j++)
            found |= g->ethertypes[j] == ethertype;
        max_len = (size_t)g->physmtu + (FRAG_MAX - 1) * ((size_t)g->physmtu - FRAG_HEADER);
        if (max_len > PKT_MAX_LEN)
            max_len = PKT_MAX_LEN;
        if (!found || plen > (size_t)g->mtu || FRAME_HEADER_LEN + 2 + plen > max_len)
            return NULL;
        return g;
    }
    return NULL;
}

/* A frame with only a checksum to finish (or nothing asked): 1 sent, 0 not, -1 error. */
static int dp_tso_csum(DataplaneObject *self, uint64_t nwid, size_t n, int64_t now)
{
    uint8_t *f = self->frame, *eth = f + DP_TSO_VNET;
    size_t flen = n - DP_TSO_VNET, start = f[6] | (f[7] << 8), offset = f[8] | (f[9] << 8);

    if (flen <= 14)
        return 0;
    if ((f[0] & DP_TSO_NEEDS_CSUM) && (start < 14 || start + offset + 2 > flen))
        return 0;
    if (dp_tso_grant(self, nwid, eth, flen - 14, now) == NULL)
        return 0;
    if (f[0] & DP_TSO_NEEDS_CSUM) {
        unsigned v = ~inet_sum_raw(eth + start, flen - start, 0) & 0xFFFFu;
        dp_tso_put16(eth + start + offset, v ? v : 0xFFFFu);
    }
    memset(f, 0, DP_TSO_VNET);
    return dp_tx_frame(self, nwid, 1, f, n, now);
}

/* A read from the port of nwid whose virtio_net_hdr is not all zero in flags and
   gso_type: 1 sent, 0 not the steady state's (the read is untouched), -1 error. */
static int dp_tso_tx(DataplaneObject *self, uint64_t nwid, size_t n, int64_t now)
{
    uint8_t *f = self->frame, *eth = f + DP_TSO_VNET, *ip, *tcp, *seg;
    uint8_t headers[DP_TSO_MAX_HEADERS];
    unsigned gso_type, gso, ident = 0, tcp_flags;
    size_t flen, ip_hl, t, tcp_hl, data_at, at, k;
    uint32_t seq, addresses;
    int v4;

    if (n < DP_TSO_VNET)
        return 0;
    gso_type = f[1];
    if (gso_type == 0)
        return dp_tso_csum(self, nwid, n, now);
    flen = n - DP_TSO_VNET;
    gso = f[4] | (f[5] << 8);
    if (gso_type != DP_TSO_TCPV4 && gso_type != DP_TSO_TCPV6)
        return 0;
    if (flen > DP_TSO_MAX_FRAME || flen < 14 + 40 || gso == 0)
        return 0;
    v4 = gso_type == DP_TSO_TCPV4;
    ip = eth + 14;
    if (v4) {
        ip_hl = (size_t)(ip[0] & 0x0F) * 4;
        if (dp_tso_be16(eth + 12) != 0x0800 || ip[0] >> 4 != 4 || ip_hl < 20 ||
            dp_tso_be16(ip + 2) != flen - 14 || ip[9] != 6 || (ip[6] & 0x3F) || ip[7])
            return 0;
        ident = dp_tso_be16(ip + 4);
    } else {
        ip_hl = 40;
        if (dp_tso_be16(eth + 12) != 0x86DD || ip[0] >> 4 != 6 ||
            dp_tso_be16(ip + 4) != flen - 14 - 40 || ip[6] != 6)
            return 0;
    }
    t = 14 + ip_hl;
    if (flen < t + 20)
        return 0;
    tcp = eth + t;
    tcp_hl = (size_t)(tcp[12] >> 4) * 4;
    tcp_flags = tcp[13];
    data_at = t + tcp_hl;
    if (tcp_hl < 20 || data_at >= flen || (tcp_flags & 0x06)) /* SYN, RST */
        return 0;
    if (ip_hl + tcp_hl + gso > DP_TSO_MAX_SEGMENT)
        return 0;
    if (dp_tso_grant(self, nwid, eth, ip_hl + tcp_hl + (flen - data_at < gso ? flen - data_at : gso),
                     now) == NULL)
        return 0;

    memcpy(headers, eth, data_at);
    seq = ((uint32_t)tcp[4] << 24) | ((uint32_t)tcp[5] << 16) | ((uint32_t)tcp[6] << 8) | tcp[7];
    addresses = v4 ? inet_sum_raw(headers + 14 + 12, 8, 0) : inet_sum_raw(headers + 14 + 8, 32, 0);
    for (k = 0, at = data_at; at < flen; k++, at += gso) {
        size_t len = flen - at < gso ? flen - at : gso, tcp_len = tcp_hl + len;
        uint8_t *sip, *stcp;
        uint32_t s, sn = seq + (uint32_t)(k * gso);
        unsigned keep = 0xFF;
        int r;

        seg = f + k * gso; /* its data is already at seg + DP_TSO_VNET + data_at */
        memset(seg, 0, DP_TSO_VNET);
        memcpy(seg + DP_TSO_VNET, headers, data_at);
        sip = seg + DP_TSO_VNET + 14;
        stcp = sip + ip_hl;
        if (v4) {
            dp_tso_put16(sip + 2, (unsigned)(ip_hl + tcp_len));
            dp_tso_put16(sip + 4, (ident + (unsigned)k) & 0xFFFFu);
            dp_tso_put16(sip + 10, 0);
            dp_tso_put16(sip + 10, ~inet_sum_raw(sip, ip_hl, 0) & 0xFFFFu);
        } else {
            dp_tso_put16(sip + 4, (unsigned)tcp_len);
        }
        stcp[4] = (uint8_t)(sn >> 24);
        stcp[5] = (uint8_t)(sn >> 16);
        stcp[6] = (uint8_t)(sn >> 8);
        stcp[7] = (uint8_t)sn;
        if (at + gso < flen)
            keep &= ~0x09u; /* FIN, PSH: the last segment's */
        if (k > 0)
            keep &= ~0x80u; /* CWR: the first's */
        stcp[13] = (uint8_t)(tcp_flags & keep);
        dp_tso_put16(stcp + 16, 0);
        s = inet_sum_raw(stcp, tcp_len, addresses + 6 + (uint32_t)tcp_len);
        dp_tso_put16(stcp + 16, ~s & 0xFFFFu);
        r = dp_tx_frame(self, nwid, 1, seg, DP_TSO_VNET + data_at + len, now);
        if (r < 0)
            return -1;
        if (r == 0)
            self->send_errors++; /* checked above; only getrandom can refuse it now */
    }
    return 1;
}

#endif /* ZTONE_DP_TSO_H */
