/*
 * fuzz_msg_proto.c - libFuzzer harness for the msg protocol engine: what a
 * channel does with a sequence of fragments from a hostile peer, past the
 * parser (fuzz_msg.c covers that alone).
 *
 * A real udp endpoint on 127.0.0.1 has one channel to a port nobody
 * listens on; each input gets a fresh msg endpoint attached to it, made
 * established by a well-formed SYN from "the peer", with one request of
 * its own outstanding. The input is then a list of records
 *
 *   [ctl][len][len bytes of fragment]
 *
 * fed to the engine as if received. A fuzzer cannot guess a random epoch
 * or the next sequence number, so ctl lets it have them: bit 0 keeps the
 * fragment's epoch (else it becomes the peer's), bit 1 sets seq to
 * rcv_nxt + (ctl >> 5), bit 2 sets ack to snd_una + (ctl >> 5), bit 3 sets
 * a REQ/REPLY tag to the outstanding request's, bit 4 runs the timers and
 * transmit path after the fragment. That takes inputs deep into
 * reassembly, out-of-order keeping, acks, replies and failure.
 *
 * Checks, beyond ASan/UBSan: the sender's sequence invariants, every
 * delivered message within UNET_MSG_MAX and readable to its last byte,
 * replies only through the request table.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc/unet -Iinclude \
 *         tests/fuzz/fuzz_msg_proto.c src/unet/msg.c src/unet/msg_proto.c \
 *         src/unet/msg_wire.c src/unet/endpoint.c src/unet/nic_udp.c src/unet/nic_shm.c \
 *         -o fuzz_msg_proto
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEER_EPOCH 0x5eed5eedu

static struct unet_nic *nic;
static struct unet_ep *ep;
static int chan = -1;
static volatile uint8_t sink;

static void on_msg(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	(void)arg;
	if (m->len > UNET_MSG_MAX || (m->len && !m->data))
		abort();
	sink ^= ((const uint8_t *)m->data)[0] ^ ((const uint8_t *)m->data)[m->len ? m->len - 1 : 0];
	if (m->req_id)
		unet_msg_reply(mep, m, "ok", 2); /* may fail (-EAGAIN...): fine */
}

static int setup(void)
{
	struct unet_ep_attr ea = {.seg_size = 256u << 10};

	if (unet_nic_open("udp:127.0.0.1", &nic) < 0 || unet_ep_create(nic, "0", &ea, &ep) < 0)
		return -1;
	chan = unet_chan_open(ep, "127.0.0.1:9", 0); /* discard: nobody answers */
	return chan < 0 ? -1 : 0;
}

static void check(const struct msg_chan *mc)
{
	if (mc->state != MC_OPEN)
		return;
	if (seq_lt(mc->snd_una, mc->snd_tail) || seq_lt(mc->snd_nxt, mc->snd_una) ||
	    seq_lt(mc->snd_end, mc->snd_nxt) || seq_lt(mc->snd_max, mc->snd_nxt) ||
	    mc->snd_end - mc->snd_tail > mc->nslots || mc->rlen > UNET_MSG_MAX)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct unet_msg_attr ma = {.stage_size = 64u << 10, .max_reqs = 8, .dead_ms = 50};
	struct unet_msg_ep *mep;
	struct msg_chan *mc;
	struct msg_frag f;
	uint8_t syn[MSG_SYN_LEN], reply[64];

	if (chan < 0 && setup() < 0)
		abort();
	if (unet_msg_create(ep, &ma, &mep) < 0 || unet_msg_attach(mep, (unsigned)chan) < 0)
		abort();
	for (int t = 0; t < UNET_MSG_TYPES; t++)
		if (t <= UNET_MSG_TYPE_USER_MAX)
			unet_msg_handle(mep, (uint8_t)t, t % 7 ? on_msg : NULL, NULL);
	mc = &mep->chans[chan];

	/* The peer's SYN: learn its epoch, it knows ours: established. */
	msg_put_hdr(syn, MSG_OP_SYN, 0, 0, PEER_EPOCH, 0, 0);
	msg_put32(syn + MSG_HDR, mc->my_epoch);
	msg_put32(syn + MSG_HDR + 4, 16);
	msg_put32(syn + MSG_HDR + 8, 2048);
	mep->now = unet__now_ns();
	if (unet__msg_parse(syn, sizeof(syn), &f) != 0 || msg_input(mep, mc, &f) != 0 ||
	    mc->state != MC_OPEN)
		abort();
	int64_t id = unet_msg_request(mep, (unsigned)chan, 1, "q", 1, reply, sizeof(reply), NULL);
	if (id <= 0)
		abort();

	while (size >= 2) {
		uint8_t ctl = data[0], len = data[1], buf[256];
		data += 2;
		size -= 2;
		if (len > size)
			len = (uint8_t)size;
		memcpy(buf, data, len);
		data += len;
		size -= len;
		if (len >= MSG_HDR) {
			uint32_t k = ctl >> 5;
			if (!(ctl & 1))
				msg_put32(buf + 4, PEER_EPOCH);
			if (ctl & 2)
				msg_put32(buf + 8, mc->rcv_nxt + k);
			if (ctl & 4)
				msg_put32(buf + 12, mc->snd_una + k);
			if ((ctl & 8) && len >= MSG_HDR + MSG_TAG)
				msg_put32(buf + MSG_HDR, (uint32_t)id);
		}
		if (mc->state == MC_FREE)
			break;
		if (mc->state != MC_FAILED && unet__msg_parse(buf, len, &f) == 0)
			msg_input(mep, mc, &f);
		if (ctl & 16) {
			mep->now = unet__now_ns();
			msg_service(mep, mc);
			msg_reap(mep);
		}
		check(mc);
	}
	struct unet_msg_comp c;
	while (unet_msg_poll_comp(mep, &c, 1) == 1)
		if (c.req_id != (uint64_t)id || (c.status == 0 && c.len > sizeof(reply)))
			abort();
	unet_msg_detach(mep, (unsigned)chan);
	unet_msg_destroy(mep);
	/* Drain what the endpoint queued (completions, nothing received). */
	struct unet_comp uc[32];
	while (unet_poll_comp(ep, uc, 32) > 0)
		;
	return 0;
}
