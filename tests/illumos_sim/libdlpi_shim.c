/*
 * A stand-in for illumos' libdlpi.so.1 on Linux, over AF_PACKET sockets.
 *
 * It exports the functions, structure layouts and return codes that
 * src/ztone/osdep/illumos/libdlpi.py declares (ILLUMOS.md section 1), with
 * illumos' behaviour where ztone depends on it:
 *
 *  - dlpi_open rejects names with ':' or without a trailing digit run (or a
 *    multi-digit run starting with 0, or 32+ characters) with
 *    DLPI_ELINKNAMEINVAL, a missing link with DLPI_ENOLINK, and a socket the
 *    caller may not open with DL_SYSERR + errno.
 *  - the handle starts DL_UNBOUND; recv/send before dlpi_bind -> DL_OUTSTATE.
 *  - binding DLPI_ANY_SAP on Ethernet binds SAP 0, which matches no Ethernet II
 *    frame: nothing is received until DL_PROMISC_SAP is on.
 *  - promiscuous levels PHYS, SAP, MULTI and the modifiers RX_ONLY, FIXUPS;
 *    INCOMING/OUTGOING are newer than OmniOS r151054: DL_NOTSUPPORTED;
 *    turning off a level that is off: DL_NOTENAB.
 *  - a promiscuous PHYS stream sees the link's own transmissions (the frames
 *    the host's IP stack sends) unless DL_PROMISC_RX_ONLY is on.
 *  - dlpi_recv: *msglenp is the buffer size on input; msec 0 polls, -1 blocks;
 *    nothing in time -> DLPI_ETIMEDOUT; a non-blocking descriptor with nothing
 *    queued -> DL_SYSERR with errno EAGAIN; raw mode gives whole frames.
 *  - dlpi_send in raw mode silently drops frames shorter than an Ethernet
 *    header or longer than the link MTU + header (+4 for a VLAN tag).
 *  - dlpi_strerror returns illumos' texts (strerror(errno) for DL_SYSERR).
 *
 *  - the host's own frames seen through a promiscuous stream come as the
 *    kernel hands them over: with checksums left for offload (only the
 *    pseudo-header sum in the field) and as TCP super-frames (GSO). With
 *    DL_PROMISC_FIXUPS on, the shim finishes the checksums and cuts super-frames
 *    into MSS-sized segments, as illumos' MAC layer does for that modifier; the
 *    packet socket's virtio-net header says what is left to do.
 *  - a hung-up stream (POLLHUP) makes dlpi_recv return DL_SYSERR without
 *    setting errno, as libdlpi's getmsg loop does: the caller sees whatever
 *    errno the previous call left.
 *
 * Test hooks (not part of libdlpi):
 *  - ztone_shim_fail_next(code, err): the next libdlpi call that returns a
 *    code returns `code` with errno = `err`;
 *  - ztone_shim_hangup(h): h's descriptor becomes a hung-up stream (same fd
 *    number, readable with POLLHUP for ever, O_NONBLOCK kept);
 *  - ztone_shim_send_queue_full(h, n): the next n dlpi_send calls on h find the
 *    stream flow-controlled: DL_SYSERR/EAGAIN on a non-blocking descriptor; on
 *    a blocking one the call waits (20 ms, as putmsg would until the queue
 *    drains) and ztone_shim_blocked_sends(h) counts it;
 *  - ztone_shim_unsupported(level): dlpi_promiscon(level) answers
 *    DL_NOTSUPPORTED (as kernels without that modifier do); 0 clears it; the
 *    environment variable ZTONE_SHIM_UNSUPPORTED=<level> does the same;
 *  - ztone_shim_promisc(h): h's promiscuous levels as a bit mask
 *    (1 << level for PHYS, SAP, MULTI, RX_ONLY, FIXUPS).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef unsigned int uint_t;
typedef unsigned char uchar_t;
typedef int32_t t_scalar_t;
typedef uint32_t t_uscalar_t;

#define DLPI_PHYSADDR_MAX 64
#define DLPI_LINKNAME_MAX 32
#define DLPI_ANY_SAP ((uint_t)-1)
#define DLPI_DEF_TIMEOUT 5
#define DLPI_RAW 0x0004
#define DLPI_DEVONLY 0x0040
#define DLPI_DEVIPNET 0x0080

enum {
	DLPI_SUCCESS = 10000, DLPI_EINVAL, DLPI_ELINKNAMEINVAL, DLPI_ENOLINK,
	DLPI_EBADLINK, DLPI_EINHANDLE, DLPI_ETIMEDOUT, DLPI_EVERNOTSUP,
	DLPI_EMODENOTSUP, DLPI_EUNAVAILSAP, DLPI_FAILURE, DLPI_ENOTSTYLE2,
	DLPI_EBADMSG, DLPI_ERAWNOTSUP, DLPI_ENOTEINVAL, DLPI_ENOTENOTSUP,
	DLPI_ENOTEIDINVAL, DLPI_EIPNETINFONOTSUP, DLPI_ERRMAX
};

#define DL_BADADDR 0x01
#define DL_OUTSTATE 0x03
#define DL_SYSERR 0x04
#define DL_NOTSUPPORTED 0x12
#define DL_NOTENAB 0x14
#define DL_PENDING 0x1b

#define DL_PROMISC_PHYS 0x01
#define DL_PROMISC_SAP 0x02
#define DL_PROMISC_MULTI 0x03
#define DL_PROMISC_RX_ONLY 0x04
#define DL_PROMISC_FIXUPS 0x07

#define DL_ETHER 0x4
#define DL_UNBOUND 0x00
#define DL_IDLE 0x03
#define DL_FACT_PHYS_ADDR 0x01
#define DL_CURR_PHYS_ADDR 0x02
#define DL_STYLE1 0x0500
#define DL_UNKNOWN (-1)

typedef struct { t_scalar_t dl_min, dl_max; } dl_priority_t;
typedef struct { t_scalar_t dl_target_value, dl_accept_value; } dl_transdelay_t;
typedef struct { t_scalar_t dl_min, dl_max; } dl_protect_t;
typedef struct {
	t_uscalar_t dl_qos_type;
	t_scalar_t dl_trans_delay, dl_priority, dl_protection, dl_residual_error;
} dl_qos_cl_sel1_t;
typedef struct {
	t_uscalar_t dl_qos_type;
	dl_transdelay_t dl_trans_delay;
	dl_priority_t dl_priority;
	dl_protect_t dl_protection;
	t_scalar_t dl_residual_error;
} dl_qos_cl_range1_t;

typedef struct {
	uint_t di_opts, di_max_sdu, di_min_sdu, di_state, di_mactype;
	char di_linkname[DLPI_LINKNAME_MAX];
	uchar_t di_physaddr[DLPI_PHYSADDR_MAX];
	uchar_t di_physaddrlen;
	uchar_t di_bcastaddr[DLPI_PHYSADDR_MAX];
	uchar_t di_bcastaddrlen;
	uint_t di_sap;
	int di_timeout;
	dl_qos_cl_sel1_t di_qos_sel;
	dl_qos_cl_range1_t di_qos_range;
} dlpi_info_t;

typedef struct { uint_t dsi_sap; dl_priority_t dsi_prio; } dlpi_sendinfo_t;
typedef enum { DLPI_ADDRTYPE_UNICAST, DLPI_ADDRTYPE_GROUP } dlpi_addrtype_t;
typedef struct {
	uchar_t dri_destaddr[DLPI_PHYSADDR_MAX];
	uchar_t dri_destaddrlen;
	dlpi_addrtype_t dri_destaddrtype;
	size_t dri_totmsglen;
} dlpi_recvinfo_t;

typedef int dlpi_walkfunc_t(const char *, void *);

#define MAX_MULTI 32
#define RXBUF_MAX (65536 + 64)

typedef struct shim_handle {
	int fd;
	int ifindex;
	uint_t flags;
	uint_t state;
	uint_t sap;
	int timeout;
	int promisc_phys, promisc_sap, promisc_multi, rx_only, fixups;
	int queue_full, blocked_sends;
	uchar_t *rxbuf;			/* one whole frame as the kernel gave it */
	struct virtio_net_hdr vh;	/* what the kernel left to do with it */
	size_t gso_len, gso_off, gso_hlen;	/* a super-frame being cut */
	int gso_seg;
	int nmulti;
	uchar_t multi[MAX_MULTI][6];
	char linkname[DLPI_LINKNAME_MAX];
} shim_handle_t;

typedef shim_handle_t *dlpi_handle_t;

/* ---- test hook ---------------------------------------------------------- */

static __thread int fail_code = -1;
static __thread int fail_errno;

void
ztone_shim_fail_next(int code, int err)
{
	fail_code = code;
	fail_errno = err;
}

static uint_t unsupported_level;

void
ztone_shim_unsupported(uint_t level)
{
	unsupported_level = level;
}

/* the hook's level, else ZTONE_SHIM_UNSUPPORTED (for processes the test starts) */
static uint_t
refused_level(void)
{
	const char *env;

	if (unsupported_level != 0)
		return (unsupported_level);
	env = getenv("ZTONE_SHIM_UNSUPPORTED");
	return (env != NULL ? (uint_t)strtoul(env, NULL, 0) : 0);
}

int
ztone_shim_hangup(shim_handle_t *h)
{
	int sv[2], flags;

	if (h == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return (-1);
	(void) close(sv[1]);	/* the peer is gone: sv[0] polls POLLIN|POLLHUP */
	flags = fcntl(h->fd, F_GETFL);
	if (dup2(sv[0], h->fd) < 0) {
		(void) close(sv[0]);
		return (-1);
	}
	(void) close(sv[0]);
	if (flags >= 0)
		(void) fcntl(h->fd, F_SETFL, flags & O_NONBLOCK);
	return (0);
}

void
ztone_shim_send_queue_full(shim_handle_t *h, int frames)
{
	if (h != NULL) {
		h->queue_full = frames;
		h->blocked_sends = 0;
	}
}

int
ztone_shim_blocked_sends(shim_handle_t *h)
{
	return (h != NULL ? h->blocked_sends : -1);
}

int
ztone_shim_promisc(shim_handle_t *h)
{
	if (h == NULL)
		return (-1);
	return ((h->promisc_phys << DL_PROMISC_PHYS) | (h->promisc_sap << DL_PROMISC_SAP) |
	    (h->promisc_multi << DL_PROMISC_MULTI) | (h->rx_only << DL_PROMISC_RX_ONLY) |
	    (h->fixups << DL_PROMISC_FIXUPS));
}

/* returns 1 (and sets *rc) when an injected failure is pending */
static int
injected(int *rc)
{
	if (fail_code < 0)
		return (0);
	*rc = fail_code;
	errno = fail_errno;
	fail_code = -1;
	return (1);
}

#define INJECT() do { int _rc; if (injected(&_rc)) return (_rc); } while (0)

/* ---- errors ------------------------------------------------------------- */

static const char *dl_texts[] = {
	"bad LSAP selector",
	"DLSAP address in improper format or invalid",
	"improper permissions for request",
	"primitive issued in improper state",
	NULL,
	"sequence number not from outstanding DL_CONN_IND",
	"user data exceeded provider limit",
	"requested service not supplied by provider",
	"specified PPA was invalid",
	"primitive received not known by provider",
	"QoS parameters contained invalid values",
	"QoS structure type is unknown/unsupported",
	"token used not an active stream",
	"attempted second bind with dl_max_conind",
	"physical link initialization failed",
	"provider couldn't allocate alternate address",
	"physical link not initialized",
	"previous data unit could not be delivered",
	"primitive is known but unsupported",
	"limit exceeded",
	"promiscuous mode not enabled",
	"other streams for PPA in post-attached",
	"automatic handling XID&TEST unsupported",
	"automatic handling of XID unsupported",
	"automatic handling of TEST unsupported",
	"automatic handling of XID response",
	"automatic handling of TEST response",
	"pending outstanding connect indications",
};

/* In illumos' table the two notification texts come in this order (see ILLUMOS.md 1.4). */
static const char *libdlpi_texts[] = {
	"DLPI operation succeeded",
	"invalid argument",
	"invalid DLPI linkname",
	"DLPI link does not exist",
	"bad DLPI link",
	"invalid DLPI handle",
	"DLPI operation timed out",
	"unsupported DLPI version",
	"unsupported DLPI connection mode",
	"unavailable DLPI SAP",
	"DLPI operation failed",
	"DLPI style-2 node reports style-1",
	"bad DLPI message",
	"DLPI raw mode not supported",
	"DLPI notification not supported by link",
	"invalid DLPI notification type",
	"invalid DLPI notification id",
	"DLPI_IPNETINFO not supported",
};

const char *
dlpi_strerror(int err)
{
	if (err == DL_SYSERR)
		return (strerror(errno));
	if (err >= 0 && err <= DL_PENDING)
		return (dl_texts[err]);
	if (err >= DLPI_SUCCESS && err < DLPI_ERRMAX)
		return (libdlpi_texts[err - DLPI_SUCCESS]);
	return ("Unknown DLPI error");
}

const char *
dlpi_mactype(uint_t mactype)
{
	switch (mactype) {
	case 0x0: return ("CSMA/CD");
	case 0x1: return ("Token Bus");
	case 0x2: return ("Token Ring");
	case DL_ETHER: return ("Ethernet");
	case 0x8: return ("FDDI");
	case 0x1a: return ("Infiniband");
	}
	return ("Unknown MAC Type");
}

uint_t
dlpi_arptype(uint_t mactype)
{
	return (mactype == DL_ETHER ? 1 : 0);	/* ARPHRD_ETHER */
}

uint_t
dlpi_iftype(uint_t mactype)
{
	return (mactype == DL_ETHER ? 6 : 0);	/* IFT_ETHER */
}

/* ---- names -------------------------------------------------------------- */

/* ifparse_ifspec + dladm_valid_linkname, as far as libdlpi's checks go */
static int
valid_linkname(const char *name)
{
	size_t len, i, digits = 0;

	if (name == NULL || strchr(name, ':') != NULL)
		return (0);
	len = strlen(name);
	if (len == 0 || len >= DLPI_LINKNAME_MAX || isdigit((unsigned char)name[0]))
		return (0);
	for (i = len; i > 0 && isdigit((unsigned char)name[i - 1]); i--)
		digits++;
	if (digits == 0 || (digits > 1 && name[len - digits] == '0'))
		return (0);
	return (1);
}

int
dlpi_parselink(const char *linkname, char *provider, uint_t *ppa)
{
	size_t len, n;

	INJECT();
	if (!valid_linkname(linkname))
		return (DLPI_ELINKNAMEINVAL);
	len = strlen(linkname);
	for (n = len; n > 0 && isdigit((unsigned char)linkname[n - 1]); n--)
		;
	if (provider != NULL) {
		memcpy(provider, linkname, n);
		provider[n] = '\0';
	}
	if (ppa != NULL)
		*ppa = (uint_t)strtoul(linkname + n, NULL, 10);
	return (DLPI_SUCCESS);
}

int
dlpi_makelink(char *linkname, const char *provider, uint_t ppa)
{
	size_t len;

	INJECT();
	if (linkname == NULL || provider == NULL)
		return (DLPI_ELINKNAMEINVAL);
	len = strlen(provider);
	if (len == 0 || len >= DLPI_LINKNAME_MAX)
		return (DLPI_ELINKNAMEINVAL);
	if (!isdigit((unsigned char)provider[len - 1]))
		(void) snprintf(linkname, DLPI_LINKNAME_MAX, "%s%u", provider, ppa);
	else
		(void) snprintf(linkname, DLPI_LINKNAME_MAX, "%s", provider);
	return (DLPI_SUCCESS);
}

/* ---- sockets ------------------------------------------------------------ */

/* (re)bind the packet socket: ETH_P_ALL with promiscuous SAP, the bound ethertype otherwise */
static int
shim_rebind(shim_handle_t *h)
{
	struct sockaddr_ll sll;
	uint16_t proto = 0;

	if (h->state == DL_IDLE) {
		if (h->promisc_sap)
			proto = ETH_P_ALL;
		else if (h->sap > 1500 && h->sap <= 0xffff)
			proto = (uint16_t)h->sap;
	}
	memset(&sll, 0, sizeof (sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = h->ifindex;
	sll.sll_protocol = htons(proto);
	if (bind(h->fd, (struct sockaddr *)&sll, sizeof (sll)) < 0)
		return (DL_SYSERR);
	return (DLPI_SUCCESS);
}

static int
shim_membership(shim_handle_t *h, int add, int type, const uchar_t *addr)
{
	struct packet_mreq mr;

	memset(&mr, 0, sizeof (mr));
	mr.mr_ifindex = h->ifindex;
	mr.mr_type = (unsigned short)type;
	if (addr != NULL) {
		mr.mr_alen = 6;
		memcpy(mr.mr_address, addr, 6);
	}
	if (setsockopt(h->fd, SOL_PACKET,
	    add ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP, &mr, sizeof (mr)) < 0)
		return (DL_SYSERR);
	return (DLPI_SUCCESS);
}

static int
shim_ifreq(shim_handle_t *h, unsigned long req, struct ifreq *ifr)
{
	memset(ifr, 0, sizeof (*ifr));
	if (if_indextoname((unsigned)h->ifindex, ifr->ifr_name) == NULL)
		return (-1);
	return (ioctl(h->fd, req, ifr));
}

/* ---- open/close --------------------------------------------------------- */

int
dlpi_open(const char *linkname, dlpi_handle_t *dhp, uint_t flags)
{
	shim_handle_t *h;
	unsigned idx;
	int rc;

	INJECT();
	if (dhp == NULL)
		return (DLPI_EINVAL);
	if (!valid_linkname(linkname))
		return (DLPI_ELINKNAMEINVAL);
	if ((flags & (DLPI_DEVIPNET | DLPI_DEVONLY)) == (DLPI_DEVIPNET | DLPI_DEVONLY))
		return (DLPI_EINVAL);
	if ((idx = if_nametoindex(linkname)) == 0)
		return (DLPI_ENOLINK);
	if ((h = calloc(1, sizeof (*h))) == NULL)
		return (DL_SYSERR);
	h->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	h->rxbuf = malloc(RXBUF_MAX);
	if (h->fd < 0 || h->rxbuf == NULL ||
	    setsockopt(h->fd, SOL_PACKET, PACKET_VNET_HDR, &(int){1}, sizeof (int)) < 0) {
		int saved = errno;
		if (h->fd >= 0)
			(void) close(h->fd);
		free(h->rxbuf);
		free(h);
		errno = saved;
		return (DL_SYSERR);
	}
	h->ifindex = (int)idx;
	h->flags = flags;
	h->state = DL_UNBOUND;
	h->timeout = DLPI_DEF_TIMEOUT;
	(void) snprintf(h->linkname, sizeof (h->linkname), "%s", linkname);
	if ((rc = shim_rebind(h)) != DLPI_SUCCESS) {
		int saved = errno;
		(void) close(h->fd);
		free(h->rxbuf);
		free(h);
		errno = saved;
		return (rc);
	}
	*dhp = h;
	return (DLPI_SUCCESS);
}

void
dlpi_close(dlpi_handle_t h)
{
	if (h != NULL) {
		(void) close(h->fd);
		free(h->rxbuf);
		free(h);
	}
}

int
dlpi_fd(dlpi_handle_t h)
{
	return (h != NULL ? h->fd : -1);
}

const char *
dlpi_linkname(dlpi_handle_t h)
{
	return (h != NULL ? h->linkname : NULL);
}

uint_t
dlpi_style(dlpi_handle_t h)
{
	(void) h;
	return (DL_STYLE1);
}

int
dlpi_set_timeout(dlpi_handle_t h, int sec)
{
	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	h->timeout = sec;
	return (DLPI_SUCCESS);
}

void
dlpi_walk(dlpi_walkfunc_t *fn, void *arg, uint_t flags)
{
	struct if_nameindex *all, *p;

	(void) flags;
	if ((all = if_nameindex()) == NULL)
		return;
	for (p = all; p->if_index != 0; p++) {
		if (valid_linkname(p->if_name) && fn(p->if_name, arg))
			break;
	}
	if_freenameindex(all);
}

/* ---- info, bind, promiscuous, multicast, addresses ---------------------- */

int
dlpi_info(dlpi_handle_t h, dlpi_info_t *info, uint_t opt)
{
	struct ifreq ifr;

	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (info == NULL || opt != 0)
		return (DLPI_EINVAL);
	memset(info, 0, sizeof (*info));
	info->di_qos_range.dl_qos_type = (t_uscalar_t)DL_UNKNOWN;
	info->di_qos_range.dl_trans_delay.dl_target_value = DL_UNKNOWN;
	info->di_qos_range.dl_trans_delay.dl_accept_value = DL_UNKNOWN;
	info->di_qos_range.dl_priority.dl_min = DL_UNKNOWN;
	info->di_qos_range.dl_priority.dl_max = DL_UNKNOWN;
	info->di_qos_range.dl_protection.dl_min = DL_UNKNOWN;
	info->di_qos_range.dl_protection.dl_max = DL_UNKNOWN;
	info->di_qos_range.dl_residual_error = DL_UNKNOWN;
	info->di_qos_sel.dl_qos_type = (t_uscalar_t)DL_UNKNOWN;
	info->di_qos_sel.dl_trans_delay = DL_UNKNOWN;
	info->di_qos_sel.dl_priority = DL_UNKNOWN;
	info->di_qos_sel.dl_protection = DL_UNKNOWN;
	info->di_qos_sel.dl_residual_error = DL_UNKNOWN;
	if (shim_ifreq(h, SIOCGIFMTU, &ifr) < 0)
		return (DL_SYSERR);
	info->di_max_sdu = (uint_t)ifr.ifr_mtu;
	info->di_min_sdu = 0;
	info->di_state = h->state;
	info->di_mactype = DL_ETHER;
	(void) snprintf(info->di_linkname, sizeof (info->di_linkname), "%s", h->linkname);
	if (h->state == DL_IDLE) {
		if (shim_ifreq(h, SIOCGIFHWADDR, &ifr) < 0)
			return (DL_SYSERR);
		memcpy(info->di_physaddr, ifr.ifr_hwaddr.sa_data, 6);
		info->di_physaddrlen = 6;
	}
	memset(info->di_bcastaddr, 0xff, 6);
	info->di_bcastaddrlen = 6;
	info->di_sap = h->sap;
	info->di_timeout = h->timeout;
	return (DLPI_SUCCESS);
}

int
dlpi_bind(dlpi_handle_t h, uint_t sap, uint_t *boundsap)
{
	int rc;

	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (h->state != DL_UNBOUND)
		return (DL_OUTSTATE);
	h->sap = (sap == DLPI_ANY_SAP) ? 0 : sap;
	h->state = DL_IDLE;
	if ((rc = shim_rebind(h)) != DLPI_SUCCESS) {
		h->state = DL_UNBOUND;
		return (rc);
	}
	if (boundsap != NULL)
		*boundsap = h->sap;
	return (DLPI_SUCCESS);
}

int
dlpi_unbind(dlpi_handle_t h)
{
	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (h->state != DL_IDLE)
		return (DL_OUTSTATE);
	h->state = DL_UNBOUND;
	return (shim_rebind(h));
}

static int
shim_promisc(dlpi_handle_t h, uint_t level, int on)
{
	int *flag;
	int rc = DLPI_SUCCESS;

	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (on && level == refused_level())
		return (DL_NOTSUPPORTED);
	switch (level) {
	case DL_PROMISC_PHYS: flag = &h->promisc_phys; break;
	case DL_PROMISC_SAP: flag = &h->promisc_sap; break;
	case DL_PROMISC_MULTI: flag = &h->promisc_multi; break;
	case DL_PROMISC_RX_ONLY: flag = &h->rx_only; break;
	case DL_PROMISC_FIXUPS: flag = &h->fixups; break;
	default: return (DL_NOTSUPPORTED);
	}
	if (!on && !*flag)
		return (DL_NOTENAB);
	if (*flag == on)
		return (DLPI_SUCCESS);
	if (level == DL_PROMISC_PHYS)
		rc = shim_membership(h, on, PACKET_MR_PROMISC, NULL);
	else if (level == DL_PROMISC_MULTI)
		rc = shim_membership(h, on, PACKET_MR_ALLMULTI, NULL);
	if (rc != DLPI_SUCCESS)
		return (rc);
	*flag = on;
	if (level == DL_PROMISC_SAP)
		rc = shim_rebind(h);
	return (rc);
}

int
dlpi_promiscon(dlpi_handle_t h, uint_t level)
{
	INJECT();
	return (shim_promisc(h, level, 1));
}

int
dlpi_promiscoff(dlpi_handle_t h, uint_t level)
{
	INJECT();
	return (shim_promisc(h, level, 0));
}

int
dlpi_enabmulti(dlpi_handle_t h, const void *addr, size_t len)
{
	int rc;

	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (addr == NULL || len > DLPI_PHYSADDR_MAX)
		return (DLPI_EINVAL);
	if (len != 6 || !(((const uchar_t *)addr)[0] & 1))
		return (DL_BADADDR);
	if (h->nmulti >= MAX_MULTI)
		return (0x13);	/* DL_TOOMANY */
	if ((rc = shim_membership(h, 1, PACKET_MR_MULTICAST, addr)) != DLPI_SUCCESS)
		return (rc);
	memcpy(h->multi[h->nmulti++], addr, 6);
	return (DLPI_SUCCESS);
}

int
dlpi_disabmulti(dlpi_handle_t h, const void *addr, size_t len)
{
	int i;

	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (addr == NULL || len > DLPI_PHYSADDR_MAX)
		return (DLPI_EINVAL);
	for (i = 0; i < h->nmulti; i++) {
		if (len == 6 && memcmp(h->multi[i], addr, 6) == 0) {
			(void) shim_membership(h, 0, PACKET_MR_MULTICAST, addr);
			memmove(h->multi[i], h->multi[i + 1], (size_t)(h->nmulti - i - 1) * 6);
			h->nmulti--;
			return (DLPI_SUCCESS);
		}
	}
	return (DL_NOTENAB);
}

int
dlpi_get_physaddr(dlpi_handle_t h, uint_t type, void *addr, size_t *addrlen)
{
	struct ifreq ifr;

	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (addr == NULL || addrlen == NULL || *addrlen < DLPI_PHYSADDR_MAX)
		return (DLPI_EINVAL);
	if (type != DL_CURR_PHYS_ADDR && type != DL_FACT_PHYS_ADDR)
		return (DL_NOTSUPPORTED);
	if (shim_ifreq(h, SIOCGIFHWADDR, &ifr) < 0)
		return (DL_SYSERR);
	memcpy(addr, ifr.ifr_hwaddr.sa_data, 6);
	*addrlen = 6;
	return (DLPI_SUCCESS);
}

int
dlpi_set_physaddr(dlpi_handle_t h, uint_t type, const void *addr, size_t addrlen)
{
	struct ifreq ifr;

	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (addr == NULL || type != DL_CURR_PHYS_ADDR || addrlen > DLPI_PHYSADDR_MAX)
		return (DLPI_EINVAL);
	if (addrlen != 6)
		return (DL_BADADDR);
	memset(&ifr, 0, sizeof (ifr));
	if (if_indextoname((unsigned)h->ifindex, ifr.ifr_name) == NULL)
		return (DL_SYSERR);
	ifr.ifr_hwaddr.sa_family = 1;	/* ARPHRD_ETHER */
	memcpy(ifr.ifr_hwaddr.sa_data, addr, 6);
	if (ioctl(h->fd, SIOCSIFHWADDR, &ifr) < 0)
		return (DL_SYSERR);
	return (DLPI_SUCCESS);
}

/* ---- data --------------------------------------------------------------- */

static long
now_ms(void)
{
	struct timespec ts;

	(void) clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* would an illumos stream in this promiscuous state get this frame? */
static int
wanted(const shim_handle_t *h, const struct sockaddr_ll *from)
{
	switch (from->sll_pkttype) {
	case PACKET_OUTGOING:
		return (h->promisc_phys && !h->rx_only);
	case PACKET_OTHERHOST:
		return (h->promisc_phys);
	default:
		return (1);
	}
}

/* ---- DL_PROMISC_FIXUPS emulation ---------------------------------------- */

static uint32_t
sum16(const uchar_t *p, size_t len, uint32_t acc)
{
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		acc += (uint32_t)((p[i] << 8) | p[i + 1]);
	if (len & 1)
		acc += (uint32_t)(p[len - 1] << 8);
	return (acc);
}

static uint16_t
fold(uint32_t acc)
{
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return ((uint16_t)acc);
}

static void
put16(uchar_t *p, uint16_t v)
{
	p[0] = (uchar_t)(v >> 8);
	p[1] = (uchar_t)v;
}

/* the checksum left for offload: the field holds the pseudo-header sum */
static void
finish_checksum(uchar_t *f, size_t len, const struct virtio_net_hdr *vh)
{
	size_t start = vh->csum_start, at = start + vh->csum_offset;
	uint16_t c;

	if (!(vh->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || at + 2 > len)
		return;
	c = (uint16_t)~fold(sum16(f + start, len - start, 0));
	if (c == 0 && vh->csum_offset == 6)	/* UDP: 0 means "no checksum" */
		c = 0xffff;
	put16(f + at, c);
}

/* segment number h->gso_seg of the super-frame in h->rxbuf, into out */
static size_t
next_segment(shim_handle_t *h, uchar_t *out, size_t outlen, size_t *total)
{
	const uchar_t *f = h->rxbuf;
	size_t hlen = h->gso_hlen, tcp = h->vh.csum_start;
	size_t plen = h->gso_len - hlen - h->gso_off;
	size_t n, l3 = 14;
	uchar_t seg[RXBUF_MAX];
	uint32_t seq, acc;
	int last;

	if (plen > h->vh.gso_size)
		plen = h->vh.gso_size;
	last = (hlen + h->gso_off + plen == h->gso_len);
	n = hlen + plen;
	memcpy(seg, f, hlen);
	memcpy(seg + hlen, f + hlen + h->gso_off, plen);
	if ((h->vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) == VIRTIO_NET_HDR_GSO_TCPV4) {
		put16(seg + l3 + 2, (uint16_t)(n - l3));
		put16(seg + l3 + 4, (uint16_t)(((f[l3 + 4] << 8) | f[l3 + 5]) + h->gso_seg));
		put16(seg + l3 + 10, 0);
		put16(seg + l3 + 10, (uint16_t)~fold(sum16(seg + l3, (size_t)(seg[l3] & 0xf) * 4, 0)));
		acc = sum16(seg + l3 + 12, 8, 0);
	} else {
		put16(seg + l3 + 4, (uint16_t)(n - l3 - 40));
		acc = sum16(seg + l3 + 8, 32, 0);
	}
	seq = ((uint32_t)f[tcp + 4] << 24 | (uint32_t)f[tcp + 5] << 16 |
	    (uint32_t)f[tcp + 6] << 8 | f[tcp + 7]) + (uint32_t)h->gso_off;
	seg[tcp + 4] = (uchar_t)(seq >> 24);
	seg[tcp + 5] = (uchar_t)(seq >> 16);
	seg[tcp + 6] = (uchar_t)(seq >> 8);
	seg[tcp + 7] = (uchar_t)seq;
	if (!last)
		seg[tcp + 13] &= (uchar_t)~0x09;	/* FIN and PSH only on the last */
	put16(seg + tcp + 16, 0);
	acc += 6 + (uint32_t)(n - tcp);
	put16(seg + tcp + 16, (uint16_t)~fold(sum16(seg + tcp, n - tcp, acc)));
	h->gso_off += plen;
	h->gso_seg++;
	if (last)
		h->gso_len = 0;
	*total = n;
	if (n > outlen)
		n = outlen;
	memcpy(out, seg, n);
	return (n);
}

/* can this super-frame be cut (TCP over untagged IPv4/IPv6, sane offsets)? */
static int
gso_cuttable(const shim_handle_t *h, size_t len)
{
	uint16_t type = h->vh.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
	size_t tcp = h->vh.csum_start;

	if (type != VIRTIO_NET_HDR_GSO_TCPV4 && type != VIRTIO_NET_HDR_GSO_TCPV6)
		return (0);
	if (h->vh.gso_size == 0 || tcp + 20 > len || tcp < 14 + 20)
		return (0);
	return (tcp + (size_t)(h->rxbuf[tcp + 12] >> 4) * 4 < len);
}

int
dlpi_recv(dlpi_handle_t h, void *saddrp, size_t *saddrlenp, void *msgbuf,
    size_t *msglenp, int msec, dlpi_recvinfo_t *recvp)
{
	struct sockaddr_ll from;
	socklen_t fromlen;
	struct pollfd pfd;
	long deadline;
	ssize_t n;
	int wait;

	(void) saddrp;
	(void) saddrlenp;
	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (msgbuf == NULL || msglenp == NULL)
		return (DLPI_EINVAL);
	if (!(h->flags & DLPI_RAW))
		return (DL_NOTSUPPORTED);
	if (h->state != DL_IDLE)
		return (DL_OUTSTATE);
	if (h->gso_len != 0) {	/* the rest of a super-frame being cut */
		size_t total;

		*msglenp = next_segment(h, msgbuf, *msglenp, &total);
		if (recvp != NULL)
			recvp->dri_totmsglen = total;
		return (DLPI_SUCCESS);
	}
	deadline = msec < 0 ? -1 : now_ms() + msec;
	for (;;) {
		wait = msec < 0 ? -1 : (int)(deadline - now_ms());
		if (wait < 0 && msec >= 0)
			wait = 0;
		pfd.fd = h->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, wait);
		if (n < 0)
			return (DL_SYSERR);
		if (n == 0)
			return (DLPI_ETIMEDOUT);
		if (pfd.revents & POLLHUP)
			return (DL_SYSERR);	/* errno untouched, as in libdlpi */
		if (pfd.revents & (POLLERR | POLLNVAL)) {
			errno = EIO;
			return (DL_SYSERR);
		}
		{
			struct iovec iov[2];
			struct msghdr mh;

			iov[0].iov_base = &h->vh;
			iov[0].iov_len = sizeof (h->vh);
			iov[1].iov_base = h->rxbuf;
			iov[1].iov_len = RXBUF_MAX;
			memset(&mh, 0, sizeof (mh));
			mh.msg_name = &from;
			mh.msg_namelen = sizeof (from);
			mh.msg_iov = iov;
			mh.msg_iovlen = 2;
			n = recvmsg(h->fd, &mh, 0);
			fromlen = mh.msg_namelen;
		}
		(void) fromlen;
		if (n < 0)
			return (DL_SYSERR);
		if (!wanted(h, &from))
			continue;	/* not for this stream: poll again */
		n -= (ssize_t)sizeof (h->vh);
		if (n < 0)
			continue;
		if (h->fixups && h->vh.gso_type != VIRTIO_NET_HDR_GSO_NONE &&
		    gso_cuttable(h, (size_t)n)) {
			size_t total;

			h->gso_len = (size_t)n;
			h->gso_off = 0;
			h->gso_seg = 0;
			h->gso_hlen = h->vh.csum_start + (size_t)(h->rxbuf[h->vh.csum_start + 12] >> 4) * 4;
			*msglenp = next_segment(h, msgbuf, *msglenp, &total);
			if (recvp != NULL)
				recvp->dri_totmsglen = total;
			return (DLPI_SUCCESS);
		}
		if (h->fixups)
			finish_checksum(h->rxbuf, (size_t)n, &h->vh);
		if (recvp != NULL)
			recvp->dri_totmsglen = (size_t)n;
		if ((size_t)n < *msglenp)
			*msglenp = (size_t)n;
		memcpy(msgbuf, h->rxbuf, *msglenp);
		return (DLPI_SUCCESS);
	}
}

int
dlpi_send(dlpi_handle_t h, const void *daddrp, size_t daddrlen, const void *msgbuf,
    size_t msglen, const dlpi_sendinfo_t *sendp)
{
	struct sockaddr_ll to;
	struct ifreq ifr;
	const uchar_t *frame = msgbuf;
	size_t limit;

	(void) daddrp;
	(void) daddrlen;
	(void) sendp;
	INJECT();
	if (h == NULL)
		return (DLPI_EINHANDLE);
	if (!(h->flags & DLPI_RAW))
		return (DL_NOTSUPPORTED);
	if (h->state != DL_IDLE)
		return (DL_OUTSTATE);
	if (msgbuf == NULL)
		return (DLPI_EINVAL);
	if (shim_ifreq(h, SIOCGIFMTU, &ifr) < 0)
		return (DL_SYSERR);
	limit = (size_t)ifr.ifr_mtu + 14;
	if (msglen >= 14 && ((const uchar_t *)msgbuf)[12] == 0x81 &&
	    ((const uchar_t *)msgbuf)[13] == 0x00)
		limit += 4;
	if (h->queue_full > 0) {
		h->queue_full--;
		if (fcntl(h->fd, F_GETFL) & O_NONBLOCK) {
			errno = EAGAIN;
			return (DL_SYSERR);
		}
		struct timespec pause = { 0, 20 * 1000000 };
		h->blocked_sends++;
		(void) nanosleep(&pause, NULL);
	}
	if (msglen < 14 || msglen > limit)
		return (DLPI_SUCCESS);	/* the kernel drops it silently */
	memset(&to, 0, sizeof (to));
	to.sll_family = AF_PACKET;
	to.sll_ifindex = h->ifindex;
	to.sll_protocol = htons((uint16_t)((frame[12] << 8) | frame[13]));
	to.sll_halen = 6;
	memcpy(to.sll_addr, frame, 6);
	{
		struct virtio_net_hdr none;	/* the socket wants one: nothing to do */
		struct iovec iov[2];
		struct msghdr mh;

		memset(&none, 0, sizeof (none));
		iov[0].iov_base = &none;
		iov[0].iov_len = sizeof (none);
		iov[1].iov_base = (void *)msgbuf;
		iov[1].iov_len = msglen;
		memset(&mh, 0, sizeof (mh));
		mh.msg_name = &to;
		mh.msg_namelen = sizeof (to);
		mh.msg_iov = iov;
		mh.msg_iovlen = 2;
		if (sendmsg(h->fd, &mh, 0) < 0)
			return (DL_SYSERR);
	}
	return (DLPI_SUCCESS);
}
