/* mpi_windows.c: under mpirun, every rank opens one shard file read-only,
 * selects its shards and draws windows; rank 0 gathers them and checks that
 * each rank stays in its own shards r, r+R, ... and that together the
 * ranks' window starts cover every shard once. Exits 1 on any failure. */
#include "common/h5util.h"
#include "common/log.h"
#include "shards/shardset.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NWIN 64
#define L    16

static int fail(int rank, const char *what)
{
    fprintf(stderr, "mpi_windows: rank %d: %s\n", rank, what);
    return 1;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size, bad = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    h5_quiet();
    shardset_t *ss = argc == 2 ? shardset_new(argv[1]) : NULL;
    int64_t start[NWIN], positions = 0;
    if (!ss || shardset_select(ss, rank, size, L) < 0) {
        bad = fail(rank, weft_last_error());
    } else {
        shardset_cursor_t c, saved;
        shardset_cursor_init(&c, 2024);
        int32_t w[L + 1], again[L + 1];
        for (int i = 0; i < NWIN && !bad; i++) {
            if (i == NWIN / 2) saved = c;
            start[i] = shardset_peek_start(ss, &c);
            bad = shardset_next_window(ss, &c, w) < 0 ? fail(rank, weft_last_error()) : 0;
        }
        /* the restored cursor draws the second half again */
        for (int i = NWIN / 2; i < NWIN && !bad; i++)
            if (shardset_peek_start(ss, &saved) != start[i] ||
                shardset_next_window(ss, &saved, again) < 0)
                bad = fail(rank, "a restored cursor drew another window");
        positions = shardset_positions(ss);
    }
    int64_t *all = rank == 0 ? malloc((size_t)size * NWIN * sizeof *all) : NULL;
    int64_t total = 0;
    MPI_Gather(start, NWIN, MPI_INT64_T, all, NWIN, MPI_INT64_T, 0, MPI_COMM_WORLD);
    MPI_Reduce(&positions, &total, 1, MPI_INT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0 && !bad) {
        int64_t n = shardset_shards(ss), sum = 0, a, b;
        for (int64_t s = 0; s < n; s++) {
            shardset_shard_range(ss, s, &a, &b);
            sum += b - a > L ? b - a - L : 0;
        }
        if (total != sum) bad = fail(0, "the ranks' window starts do not cover the shards once");
        for (int r = 0; r < size && !bad; r++)
            for (int i = 0; i < NWIN && !bad; i++) {
                int64_t s = 0, x = all[r * NWIN + i];
                while (s < n && (shardset_shard_range(ss, s, &a, &b), b <= x)) s++;
                if (s == n || s % size != r || x + L + 1 > b)
                    bad = fail(r, "a window lies outside the rank's shards");
            }
        if (!bad)
            printf("mpi_windows: %d ranks, %d windows each, all in their own shards\n", size, NWIN);
    }
    int any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    free(all);
    shardset_destroy(&ss);
    MPI_Finalize();
    return any;
}
