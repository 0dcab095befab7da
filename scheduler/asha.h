/* asha.h: asynchronous successive halving (ASHA), the rule weftd applies
 * when a trial of an early-stopped sweep reports its validation loss at a
 * rung: it goes on only while it is in the top 1/eta of the trials that have
 * reached that rung so far. A decision never waits for stragglers. */
#ifndef WEFT_ASHA_H
#define WEFT_ASHA_H

#include <stddef.h>
#include <stdint.h>

/* Rung index of step s for rungs at min_steps * eta^k (k >= 0) below or at
 * steps, or -1 when s is no rung. */
int asha_rung(int64_t s, int64_t min_steps, int eta, int64_t steps);

/* losses: the validation losses of the n trials that have reached the rung,
 * this one's (mine) among them. 1 when the trial goes on: its rank (1 + the
 * number of strictly lower losses) is at most ceil(n / eta), so the first
 * trial at a rung always goes on; 0 when it stops. A NaN loss stops. */
int asha_continues(const double *losses, size_t n, double mine, int eta);

#endif
