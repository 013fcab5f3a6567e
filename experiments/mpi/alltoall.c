/* alltoall: the project's MPI all-to-all check, run by `testbed mpirun` across guests.
 *
 * Every rank sends a distinct block of BYTES to every other rank (MPI_Alltoall), ITERATIONS
 * times, and checks every byte it receives. Rank 0 prints one JSON line: ranks, per-rank hostnames,
 * bytes sent in total, time.
 *
 * usage: alltoall [BYTES_PER_PAIR [ITERATIONS]]   (defaults 262144 and 10)
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char pattern(int from, int to, int iter, long i) {
    return (unsigned char)(from * 31 + to * 7 + iter * 3 + i);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    long bytes = argc > 1 ? atol(argv[1]) : 262144;
    int iterations = argc > 2 ? atoi(argv[2]) : 10;
    if (bytes <= 0 || iterations <= 0) {
        if (rank == 0) fprintf(stderr, "alltoall: BYTES and ITERATIONS must be positive\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    unsigned char *out = malloc((size_t)bytes * n), *in = malloc((size_t)bytes * n);
    if (!out || !in) {
        fprintf(stderr, "alltoall: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    char host[MPI_MAX_PROCESSOR_NAME];
    int len;
    MPI_Get_processor_name(host, &len);
    long errors = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int it = 0; it < iterations; it++) {
        for (int to = 0; to < n; to++)
            for (long i = 0; i < bytes; i++) out[to * bytes + i] = pattern(rank, to, it, i);
        MPI_Alltoall(out, (int)bytes, MPI_BYTE, in, (int)bytes, MPI_BYTE, MPI_COMM_WORLD);
        for (int from = 0; from < n; from++)
            for (long i = 0; i < bytes; i++)
                if (in[from * bytes + i] != pattern(from, rank, it, i)) errors++;
    }
    double elapsed = MPI_Wtime() - t0;
    long total_errors = 0;
    MPI_Reduce(&errors, &total_errors, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
    char *hosts = rank == 0 ? malloc((size_t)MPI_MAX_PROCESSOR_NAME * n) : NULL;
    MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, hosts, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        printf("{\"ranks\": %d, \"hosts\": [", n);
        for (int r = 0; r < n; r++) printf("%s\"%s\"", r ? ", " : "", hosts + (size_t)r * MPI_MAX_PROCESSOR_NAME);
        printf("], \"bytes_per_pair\": %ld, \"iterations\": %d, \"bytes_sent_remote\": %ld, \"errors\": %ld, \"seconds\": %.6f}\n",
               bytes, iterations, bytes * (long)n * (n - 1) * iterations, total_errors, elapsed);
    }
    free(out);
    free(in);
    free(hosts);
    MPI_Finalize();
    return total_errors == 0 || rank != 0 ? 0 : 1;
}
