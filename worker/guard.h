/* guard.h: what keeps a worker group honest: SIGUSR1/SIGTERM turned into a
 * "checkpoint and exit 75" request, a watchdog that aborts the whole group
 * when a step makes no progress, and deterministic fault injection for tests
 * (WEFT_FAULT=rank:step:kill|exit|hang|wait[:attempt]). */
#ifndef WEFT_GUARD_H
#define WEFT_GUARD_H

#include <signal.h>
#include <stdint.h>

/* Installs the handlers; after SIGUSR1 or SIGTERM guard_stop_requested()
 * returns the signal number. */
void guard_signals(void);
int guard_stop_requested(void);

/* Starts the watchdog: when guard_progress() has not been called for
 * `seconds`, it prints why and aborts the group (MPI_Abort when the MPI
 * library allows calls from a second thread, else a SIGKILL of this rank,
 * which makes mpirun end every rank). seconds <= 0: no watchdog. */
int guard_watchdog_start(double seconds, int rank, int mpi_thread_multiple);
void guard_progress(int64_t step);
void guard_watchdog_stop(void);

/* Parses WEFT_FAULT (NULL or empty: no fault); -1 with weft_error when it
 * is malformed. */
int guard_fault_parse(const char *text, int attempt);
/* Called at the start of each step: dies, exits or hangs as told when this
 * rank reaches the fault's step, or (wait) holds there until a stop signal
 * arrives and then goes on, so a test can preempt a run at a known step. */
void guard_fault_point(int rank, int64_t step);

#endif
