// ringctl persistent loop, part 2: the loop itself, after the records (In, Out) and the
// handler (reached through RC_HANDLE). The same protocol as the compiled CPU loop: per
// pass bump the heartbeat, read the command, echo it in ACK; when ACTIVE handle up to
// `batch` records, then publish counters, outputs and freed input slots, in that order.
// The indices (HEAD, TAIL), ACK, RING_CLOSED and TERMINATED are release stores; the
// counters, POS and the heartbeat are relaxed stores that the next release publishes
// (on the GPU a release store waits for every earlier write to reach host memory). Sinks are built with RC_SINK defined (no output ring, no
// Out record).
RINGCTL_ENTRY ringctl_loop(rc_word* ctrl, rc_word* in_hdr, In* in_recs, rc_word in_cap,
                           rc_word* out_hdr, void* out_ring, rc_word out_cap, double* state,
                           rc_word spin, rc_word nap_us, rc_word batch) {
  RC_ONE_THREAD;
  const rc_word in_mask = in_cap - 1;
#ifndef RC_SINK
  const rc_word out_mask = out_cap - 1;
  Out* const out_recs = static_cast<Out*>(out_ring);
  Out scratch;  // where outputs go while the consumer is gone
  rc_word n_out = rc_load(ctrl + RC_OUT);
  bool closed = false;
#endif
  rc_word beat = rc_load(ctrl + RC_HEARTBEAT);
  rc_word n_in = rc_load(ctrl + RC_IN);
  rc_word n_err = rc_load(ctrl + RC_ERRORS);
  rc_word ack = -1;
  rc_word idle = 0;
  // Naps double while the loop stays idle: up to 16 x nap_us, not past 1 ms (unless
  // nap_us itself is longer). Work brings them back to nap_us.
  const rc_word most_nap = nap_us > 1000 ? nap_us : (16 * nap_us < 1000 ? 16 * nap_us : 1000);
  rc_word nap = nap_us;
  for (;;) {
    beat += 1;
    rc_store_relaxed(ctrl + RC_HEARTBEAT, beat);
    const rc_word cmd = rc_load(ctrl + RC_CMD);
    if (cmd != ack) {
      ack = cmd;
      rc_store(ctrl + RC_ACK, cmd);
    }
    if (cmd == RC_TERM) break;
    if (cmd == RC_ACTIVE) {
      const rc_word tail = in_hdr[RC_TAIL];  // this loop is the only writer of TAIL
      const rc_word head = rc_load(in_hdr + RC_HEAD);
#ifdef RC_SINK
      rc_word n = head - tail;
      if (n > batch) n = batch;
      if (n > 0) {
        for (rc_word k = 0; k < n; ++k) {
          rc_store_relaxed(ctrl + RC_POS, tail + k + 1);
          const In rec = in_recs[(tail + k) & in_mask];
          if (RC_HANDLE(rec, state) < 0) n_err += 1;
        }
        n_in += n;
        rc_store_relaxed(ctrl + RC_IN, n_in);
        rc_store_relaxed(ctrl + RC_ERRORS, n_err);
        rc_store(in_hdr + RC_TAIL, tail + n);
        idle = 0;
        continue;
      }
#else
      // Words that matter only when there is input are read only then: on the GPU each
      // acquire load of host memory is a PCIe round trip, so an idle pass reads two.
      const rc_word avail = head - tail;
      if (avail > 0 && rc_load(out_hdr + RC_CONSUMER_GONE) != 0) {
        // Nothing will read the output ring: handle the input anyway (so this kernel
        // drains and stops on time) and count what it would have sent.
        const rc_word n = avail < batch ? avail : batch;
        rc_word gone = 0;
        for (rc_word k = 0; k < n; ++k) {
          rc_store_relaxed(ctrl + RC_POS, tail + k + 1);
          const In rec = in_recs[(tail + k) & in_mask];
          const int r = RC_HANDLE(rec, scratch, state);
          if (r > 0) gone += 1;
          else if (r < 0) n_err += 1;
        }
        n_out += gone;
        n_in += n;
        rc_store_relaxed(ctrl + RC_IN, n_in);
        rc_store_relaxed(ctrl + RC_OUT, n_out);
        rc_store_relaxed(ctrl + RC_ERRORS, n_err);
        rc_store_relaxed(out_hdr + RC_DISCARDED, rc_load(out_hdr + RC_DISCARDED) + gone);
        rc_store(in_hdr + RC_TAIL, tail + n);
        idle = 0;
        continue;
      }
      rc_word n = avail < batch ? avail : batch;
      if (n > 0) {
        const rc_word out_start = out_hdr[RC_HEAD];  // this loop is the only writer of HEAD
        rc_word out_head = out_start;
        const rc_word free_slots = out_cap - (out_head - rc_load(out_hdr + RC_TAIL));
        if (n > free_slots) n = free_slots;
        for (rc_word k = 0; k < n; ++k) {
          rc_store_relaxed(ctrl + RC_POS, tail + k + 1);
          // The record is copied in whole (one burst of loads, not one round trip per
          // field on the GPU) and the output is built locally, starting zeroed.
          const In rec = in_recs[(tail + k) & in_mask];
          Out out{};
          const int r = RC_HANDLE(rec, out, state);
          if (r > 0) out_recs[out_head++ & out_mask] = out;
          else if (r < 0) n_err += 1;
        }
        if (n > 0) {
          n_out += out_head - out_start;
          n_in += n;
          // Counters first, then the outputs, then the freed slots: whoever sees the
          // input ring empty also sees the outputs and the counts.
          rc_store_relaxed(ctrl + RC_IN, n_in);
          rc_store_relaxed(ctrl + RC_OUT, n_out);
          rc_store_relaxed(ctrl + RC_ERRORS, n_err);
          rc_store(out_hdr + RC_HEAD, out_head);
          rc_store(in_hdr + RC_TAIL, tail + n);
          idle = 0;
          continue;
        }
      }
      if (!closed && head == tail && rc_load(in_hdr + RC_RING_CLOSED) != 0 &&
          rc_load(in_hdr + RC_HEAD) == tail) {
        // End of stream passes downstream once everything before it has.
        rc_store(out_hdr + RC_RING_CLOSED, 1);
        closed = true;
      }
#endif
    }
    idle += 1;
    if (idle <= spin) {
      rc_relax();
    } else {
      if (idle == spin + 1) nap = nap_us;  // the first nap since the last record
      rc_nap(nap);
      nap = 2 * nap < most_nap ? 2 * nap : most_nap;
    }
  }
  rc_store(ctrl + RC_TERMINATED, RC_STOP_TERMINATED);
}
