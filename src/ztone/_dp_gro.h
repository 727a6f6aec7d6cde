/*
 * Receive coalescing for the native data plane (part of _speedups.c, Linux only).
 *
 * The frames one rx_burst delivers to a port opened with IFF_VNET_HDR are often
 * consecutive segments of one TCP connection. As osdep/linux/gro.py does for the
 * general path, a run of them goes to the port as ONE write: a virtio_net_hdr saying
 * "TCP GSO, segment size mss" and the merged packet, which the host's stack handles
 * (and acknowledges) once. The rules and the bytes are gro.coalesce()'s, applied
 * frame by frame as the frames come (tests/service/test_dataplane_gro.py compares the
 * two byte for byte):
 *
 *   a segment: Ethernet type IPv4 with IHL 5, protocol 6, neither MF nor a fragment
 *   offset, total length = the frame's; or IPv6 with next header 6 (no extension
 *   headers), payload length = the frame's; TCP data offset >= 5 words, some payload,
 *   flags ACK or ACK|PSH; at most 65535 bytes.
 *   joins the run: the run's last segment was exactly mss (the first's payload length)
 *   without PSH; same Ethernet header; same flow key (IPv4 TOS, flags byte, TTL,
 *   addresses; IPv6 first word, hop limit, addresses; TCP ports, ack, data offset
 *   byte, window, urgent pointer, options); seq = the run's next; payload <= mss;
 *   merged IP length <= 65535; the first's and its own TCP checksums are right (the
 *   first's checked when a second would join).
 *
 * Anything that cannot join ends the run (written first: frames keep their order);
 * a segment then starts the next run, anything else is written alone at once. A run
 * also ends at a frame for another grant or port, and at the end of rx_burst on every
 * path. A run of one frame goes as received. Every lone write carries a virtio_net_hdr
 * of zeros.
 *
 * The run lives in one buffer allocated with the table (no growth), laid out as
 * the write that ends it:
 *   [virtio_net_hdr 10][Ethernet 14][IP header 20|40][TCP header][payload 1]...[payload k]
 * virtio_net_hdr, little-endian: flags u8 (1: NEEDS_CSUM), gso_type u8 (1 TCPv4,
 * 4 TCPv6), hdr_len u16 (14 + IP + TCP header), gso_size u16 (mss), csum_start u16
 * (14 + IP header), csum_offset u16 (16).
 * A merged packet has the first segment's headers with: IP length (and IPv4 header
 * checksum) of the whole; TCP flags ACK, plus PSH if the last had it; the TCP checksum
 * field holding the pseudo header's sum, not complemented (CHECKSUM_PARTIAL).
 */
#ifndef ZTONE_DP_GRO_H
#define ZTONE_DP_GRO_H

#define DP_GRO_MAX_IP 65535
#define DP_GRO_VNET 10
#define DP_GRO_AT (DP_GRO_VNET + 14) /* the IP packet's offset in the run buffer */
#define DP_GRO_BUF (DP_GRO_AT + DP_GRO_MAX_IP)
#define DP_GRO_ACK 0x10
#define DP_GRO_PSH 0x08

typedef struct {
    uint8_t *buf; /* DP_GRO_BUF bytes */
    int active, grant, tap_fd, frames, checked;
    size_t ip_hl, tcp_hl, mss, last_len, len; /* len: the IP packet's bytes so far */
    uint32_t next_seq;
    uint8_t last_flags;
    uint64_t writes, merged; /* merged writes, and the frames they carried */
} dp_gro;

typedef struct {
    size_t ip_hl, tcp_hl, plen;
    uint32_t seq;
    uint8_t flags;
} dp_gro_seg;

static inline uint16_t dp_gro_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline void dp_gro_put16(uint8_t *p, unsigned v, int little)
{
    p[little ? 1 : 0] = (uint8_t)(v >> 8);
    p[little ? 0 : 1] = (uint8_t)v;
}

/* The pseudo header's sum: addresses, protocol 6, TCP length. */
static uint32_t dp_gro_pseudo(const uint8_t *ip, size_t ip_hl, size_t tcp_len)
{
    return ip_hl == 20 ? inet_sum_raw(ip + 12, 8, 6 + (uint32_t)tcp_len)
                       : inet_sum_raw(ip + 8, 32, 6 + (uint32_t)tcp_len);
}

static int dp_gro_checksum_ok(const uint8_t *ip, size_t n, size_t ip_hl)
{
    return inet_sum_raw(ip + ip_hl, n - ip_hl, dp_gro_pseudo(ip, ip_hl, n - ip_hl)) == 0xFFFF;
}

/* Is the IP packet p[0:n] (after Ethernet header eth) a segment that may be merged? */
static int dp_gro_segment(const uint8_t *eth, const uint8_t *p, size_t n, dp_gro_seg *s)
{
    size_t t;
    if (n > DP_GRO_MAX_IP)
        return 0;
    if (eth[12] == 0x08 && eth[13] == 0x00) {
        if (n < 40 || p[0] != 0x45 || p[9] != 6 || (p[6] & 0x3F) || p[7] || dp_gro_be16(p + 2) != n)
            return 0;
        t = 20;
    } else if (eth[12] == 0x86 && eth[13] == 0xDD) {
        if (n < 60 || p[0] >> 4 != 6 || p[6] != 6 || dp_gro_be16(p + 4) != n - 40)
            return 0;
        t = 40;
    } else
        return 0;
    s->ip_hl = t;
    s->tcp_hl = (size_t)(p[t + 12] >> 4) * 4;
    s->flags = p[t + 13];
    if (s->tcp_hl < 20 || n <= t + s->tcp_hl || (s->flags & ~DP_GRO_PSH) != DP_GRO_ACK)
        return 0;
    s->plen = n - t - s->tcp_hl;
    s->seq = (uint32_t)p[t + 4] << 24 | (uint32_t)p[t + 5] << 16 | (uint32_t)p[t + 6] << 8 |
             p[t + 7];
    return 1;
}

/* Same flow key (see the top); a and b are segments of one ethertype. */
static int dp_gro_same_flow(const uint8_t *a, const uint8_t *b, size_t t)
{
    size_t tcp_hl;
    if (t == 20) {
        if (a[1] != b[1] || a[6] != b[6] || a[8] != b[8] || memcmp(a + 12, b + 12, 8) != 0)
            return 0;
    } else if (memcmp(a, b, 4) != 0 || memcmp(a + 7, b + 7, 33) != 0)
        return 0;
    /* ports; ack and data offset byte (so equal header lengths); window; the rest */
    if (memcmp(a + t, b + t, 4) != 0 || memcmp(a + t + 8, b + t + 8, 5) != 0 ||
        memcmp(a + t + 14, b + t + 14, 2) != 0)
        return 0;
    tcp_hl = (size_t)(a[t + 12] >> 4) * 4;
    return memcmp(a + t + 18, b + t + 18, tcp_hl - 18) == 0;
}

/* Write the run (merged if it holds more than one frame) and forget it. */
static void dp_gro_flush(dp_gro *r, uint64_t *delivered, uint64_t *tap_errors)
{
    uint8_t *v = r->buf, *ip = r->buf + DP_GRO_AT, *tcp;
    size_t hl;
    if (!r->active)
        return;
    r->active = 0;
    if (r->frames > 1) {
        hl = r->ip_hl + r->tcp_hl;
        if (r->ip_hl == 20) {
            dp_gro_put16(ip + 2, (unsigned)r->len, 0);
            ip[10] = ip[11] = 0;
            dp_gro_put16(ip + 10, ~inet_sum_raw(ip, 20, 0) & 0xFFFFu, 0);
        } else
            dp_gro_put16(ip + 4, (unsigned)(r->len - 40), 0);
        tcp = ip + r->ip_hl;
        tcp[13] = (uint8_t)(DP_GRO_ACK | (r->last_flags & DP_GRO_PSH));
        dp_gro_put16(tcp + 16, dp_gro_pseudo(ip, r->ip_hl, r->len - r->ip_hl), 0);
        v[0] = 1;
        v[1] = r->ip_hl == 20 ? 1 : 4;
        dp_gro_put16(v + 2, (unsigned)(14 + hl), 1);
        dp_gro_put16(v + 4, (unsigned)r->mss, 1);
        dp_gro_put16(v + 6, (unsigned)(14 + r->ip_hl), 1);
        dp_gro_put16(v + 8, 16, 1);
    } else
        memset(v, 0, DP_GRO_VNET);
    if (write(r->tap_fd, v, DP_GRO_AT + r->len) < 0) {
        (*tap_errors)++;
        return;
    }
    *delivered += (uint64_t)r->frames;
    if (r->frames > 1) {
        r->writes++;
        r->merged += (uint64_t)r->frames;
    }
}

/* Deliver the frame f[0:n] ([Ethernet 14][payload]) to the port tap_fd (a TAP with
   IFF_VNET_HDR) of grant: joined to the run, or after it. */
static void dp_gro_offer(dp_gro *r, int grant, int tap_fd, const uint8_t *f, size_t n,
                         uint64_t *delivered, uint64_t *tap_errors)
{
    static const uint8_t zeros[DP_GRO_VNET];
    const uint8_t *p = f + 14;
    dp_gro_seg s;
    int seg = n > 14 && dp_gro_segment(f, p, n - 14, &s);

    if (r->active) {
        const uint8_t *first = r->buf + DP_GRO_AT;
        if (seg && r->grant == grant && r->tap_fd == tap_fd &&
            !(r->last_flags & DP_GRO_PSH) && r->last_len == r->mss &&
            memcmp(r->buf + DP_GRO_VNET, f, 14) == 0 && dp_gro_same_flow(first, p, r->ip_hl) &&
            s.seq == r->next_seq && s.plen <= r->mss && r->len + s.plen <= DP_GRO_MAX_IP &&
            (r->checked || dp_gro_checksum_ok(first, r->len, r->ip_hl)) &&
            dp_gro_checksum_ok(p, n - 14, s.ip_hl)) {
            r->checked = 1;
            memcpy(r->buf + DP_GRO_AT + r->len, p + s.ip_hl + s.tcp_hl, s.plen);
            r->len += s.plen;
            r->frames++;
            r->next_seq += (uint32_t)s.plen;
            r->last_len = s.plen;
            r->last_flags = s.flags;
            return;
        }
        dp_gro_flush(r, delivered, tap_errors);
    }
    if (!seg) {
        struct iovec iov[2] = {{(void *)zeros, DP_GRO_VNET}, {(void *)f, n}};
        if (writev(tap_fd, iov, 2) < 0)
            (*tap_errors)++;
        else
            (*delivered)++;
        return;
    }
    memcpy(r->buf + DP_GRO_VNET, f, n);
    r->active = 1;
    r->grant = grant;
    r->tap_fd = tap_fd;
    r->frames = 1;
    r->checked = 0;
    r->ip_hl = s.ip_hl;
    r->tcp_hl = s.tcp_hl;
    r->mss = r->last_len = s.plen;
    r->len = n - 14;
    r->next_seq = s.seq + (uint32_t)s.plen;
    r->last_flags = s.flags;
}

#endif
