/* test_xdp_parse.c - the xdp NIC's frame code without a network (runs
 * unprivileged): the 64-bit one's-complement sum against a plain 16-bit
 * reference on every length and alignment, frames built by xf_build parse
 * back to what went in, checksums a kernel would accept, and a mutation storm
 * (every single-byte change, random multi-byte changes, every truncation):
 * the parser never reads out of bounds (ASan) and accepts a mutated frame
 * only when the mutation left it valid by the reference rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "xdp_frame.h"

/* RFC 1071 the slow, obvious way: big-endian 16-bit words. */
static uint16_t ref_sum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static void test_sum_matches_reference(void **state)
{
	uint8_t buf[2100];

	for (int trial = 0; trial < 3000; trial++) {
		size_t off = rnd() % 8, n = rnd() % 2048;
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)(trial % 3 == 0 ? 0xff : rnd()); /* all-ones stresses carries */
		uint16_t mine = ntohs(xf_fold(xf_sum(0, buf + off, n)));
		uint16_t ref = ref_sum(buf + off, n, 0);
		/* 0x0000 and 0xffff are the same number in one's complement */
		if (!((mine == ref) || (mine == 0xffff && ref == 0) || (mine == 0 && ref == 0xffff)))
			fail_msg("len %zu off %zu: %04x != %04x", n, off, mine, ref);
	}
}

/* Independent validity check of a frame addressed to daddr. */
static int ref_valid(const uint8_t *f, uint32_t flen, uint32_t daddr, uint32_t *plen)
{
	if (flen < 42 || f[12] != 0x08 || f[13] != 0x00 || f[14] != 0x45 || f[23] != 17)
		return 0;
	if ((f[20] & 0x3f) || f[21])
		return 0; /* MF or fragment offset */
	if (memcmp(f + 30, &daddr, 4) != 0)
		return 0;
	uint32_t tot = (uint32_t)(f[16] << 8 | f[17]), ulen = (uint32_t)(f[38] << 8 | f[39]);
	if (tot < 28 || 14 + tot > flen || ulen != tot - 20)
		return 0;
	if (ref_sum(f + 14, 20, 0) != 0xffff)
		return 0;
	if (f[40] || f[41]) {
		uint8_t pseudo[12];
		memcpy(pseudo, f + 26, 8);
		pseudo[8] = 0;
		pseudo[9] = 17;
		pseudo[10] = f[38];
		pseudo[11] = f[39];
		uint16_t ps = ref_sum(pseudo, 12, 0);
		uint16_t s = ref_sum(f + 34, ulen, ps);
		uint16_t field = (uint16_t)(f[40] << 8 | f[41]);
		if (s != 0xffff && field != ps)
			return 0;
	}
	*plen = ulen - 8;
	return 1;
}

static uint32_t make(uint8_t *f, uint32_t len, struct xf_tmpl *t)
{
	static const uint8_t a[6] = {2, 0, 0, 0, 0, 1}, b[6] = {2, 0, 0, 0, 0, 2};
	uint8_t pl[2048];

	for (uint32_t i = 0; i < len; i++)
		pl[i] = (uint8_t)rnd();
	xf_tmpl_init(t, a, b, htonl(0x0a4d0102), htonl(0x0a4d0101), htons(7001), htons(7000));
	return xf_build(f, t, pl, len);
}

static void test_build_parse_roundtrip(void **state)
{
	uint8_t f[2100];
	struct xf_tmpl t;

	for (uint32_t len = 0; len <= 1472; len += (len < 100 ? 1 : 37)) {
		uint32_t n = make(f, len, &t), saddr, plen, rplen;
		uint16_t sport;
		assert_int_equal(n, 42 + len);
		assert_int_equal(ref_valid(f, n, htonl(0x0a4d0101), &rplen), 1);
		assert_int_equal(xf_parse(f, n, htonl(0x0a4d0101), &saddr, &sport, &plen), 0);
		assert_int_equal(plen, len);
		assert_int_equal(saddr, htonl(0x0a4d0102));
		assert_int_equal(sport, htons(7001));
		/* Ethernet padding after the datagram is fine */
		assert_int_equal(xf_parse(f, n + 6, htonl(0x0a4d0101), &saddr, &sport, &plen), 0);
		/* addressed to someone else: not ours */
		assert_int_equal(xf_parse(f, n, htonl(0x0a4d0103), &saddr, &sport, &plen), -1);
	}
	/* xf_checksum (used to craft frames) agrees with xf_build */
	uint32_t n = make(f, 333, &t), saddr, plen;
	uint16_t sport, ic = ((struct xf_hdr *)f)->ip_check, uc = ((struct xf_hdr *)f)->udp_check;
	xf_checksum(f);
	assert_int_equal(((struct xf_hdr *)f)->ip_check, ic);
	assert_int_equal(((struct xf_hdr *)f)->udp_check, uc);
	assert_int_equal(xf_parse(f, n, htonl(0x0a4d0101), &saddr, &sport, &plen), 0);
}

static void check_mutant(uint8_t *m, uint32_t n)
{
	uint32_t saddr, plen = 0, rplen = 0;
	uint16_t sport;
	/* copy into an exact-size heap block so ASan sees any overread */
	uint8_t *h = malloc(n ? n : 1);
	memcpy(h, m, n);
	int mine = xf_parse(h, n, htonl(0x0a4d0101), &saddr, &sport, &plen) == 0;
	int ref = ref_valid(h, n, htonl(0x0a4d0101), &rplen);
	free(h);
	if (mine != ref)
		fail_msg("parser says %d, reference says %d (len %u)", mine, ref, n);
	if (mine)
		assert_int_equal(plen, rplen);
}

static void test_mutations(void **state)
{
	uint8_t f[2100], m[2100];
	struct xf_tmpl t;

	for (uint32_t len = 0; len <= 300; len += 61) {
		uint32_t n = make(f, len, &t);
		for (uint32_t i = 0; i < n; i++) /* every byte, a few values each */
			for (int v = 0; v < 4; v++) {
				memcpy(m, f, n);
				m[i] ^= (uint8_t)(1u << (rnd() % 8)) | (uint8_t)(v ? rnd() : 0);
				check_mutant(m, n);
			}
		for (uint32_t cut = 0; cut < n; cut++) /* every truncation */
			check_mutant(f, cut);
		for (int k = 0; k < 2000; k++) { /* several bytes at once */
			memcpy(m, f, n);
			for (int j = 0, c = 1 + (int)(rnd() % 4); j < c; j++)
				m[rnd() % n] = (uint8_t)rnd();
			check_mutant(m, n);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sum_matches_reference),
		cmocka_unit_test(test_build_parse_roundtrip),
		cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
