/*
 * shm_peer.c - see shm_peer.h.
 */
#include "helpers/shm_peer.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int peer_open(struct peer *p, const char *name, const struct unet_ep_attr *attr)
{
	int rc;

	memset(p, 0, sizeof(*p));
	rc = unet_nic_open("shm", &p->nic);
	if (rc < 0)
		return rc;
	rc = unet_ep_create(p->nic, name, attr, &p->ep);
	if (rc < 0) {
		unet_nic_close(p->nic);
		p->nic = NULL;
		return rc;
	}
	p->seg = unet_ep_segment(p->ep, &p->seg_size);
	return 0;
}

void peer_close(struct peer *p)
{
	if (p->ep)
		unet_ep_destroy(p->ep);
	if (p->nic)
		unet_nic_close(p->nic);
	memset(p, 0, sizeof(*p));
}

int peer_recv(struct peer *p, struct unet_desc *d, unsigned max, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		int n = unet_recv(p->ep, d, max);
		if (n != 0)
			return n;
		uint64_t t = now_ms();
		if (t >= deadline)
			return 0;
		int w = unet_wait(p->ep, (int)(deadline - t));
		if (w < 0)
			return w;
	}
}

int peer_send(struct peer *p, const struct unet_desc *d, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	struct unet_comp c[32];

	for (;;) {
		int rc = unet_send(p->ep, d, 1);
		if (rc == 1)
			return 0;
		if (rc != -EAGAIN || now_ms() >= deadline)
			return rc;
		unet_poll_comp(p->ep, c, 32);
	}
}

static uint8_t pattern_byte(uint32_t i, uint64_t seq)
{
	uint64_t x = (seq + 1) * 0x9e3779b97f4a7c15ull + (i / 8) * 0xbf58476d1ce4e5b9ull;

	x ^= x >> 31;
	return (uint8_t)(x >> ((i % 8) * 8));
}

void pattern_fill(uint8_t *p, uint32_t len, uint64_t seq)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = pattern_byte(i, seq);
}

int pattern_check(const uint8_t *p, uint32_t len, uint64_t seq)
{
	for (uint32_t i = 0; i < len; i++)
		if (p[i] != pattern_byte(i, seq))
			return -1;
	return 0;
}

const uint8_t *peer_payload(struct peer *p, const struct unet_desc *d)
{
	return (d->flags & UNET_DF_INLINE) ? d->data : unet_ptr(p->ep, d->off);
}
