package dev.latentmoe.bench.jmh;

import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * Per-call counters: each benchmark call adds the bytes it had to move and the FLOPs it did, so JMH
 * reports them as rates next to the calls/s (in throughput mode: {@code :bytes} in bytes/s and
 * {@code :flops} in FLOP/s), and its working set (the report marks a row whose working set fits the
 * last-level cache). Reset at every iteration, as JMH requires.
 */
@State(Scope.Thread)
@AuxCounters(AuxCounters.Type.OPERATIONS)
public class Traffic {
    public long bytes;
    public long flops;
    /** The bytes the benchmark's rotation of inputs touches (its working set), added per call: per call = rate / calls. */
    public long workingSet;

    @Setup(Level.Iteration)
    public void reset() {
        bytes = 0;
        flops = 0;
        workingSet = 0;
    }

    final void add(long b, long f, long ws) {
        bytes += b;
        flops += f;
        workingSet += ws;
    }
}
