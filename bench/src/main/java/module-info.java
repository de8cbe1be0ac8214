/** The command line and the benchmarks; exports nothing. JMH reaches its benchmark classes reflectively. */
module dev.latentmoe.bench {
    requires dev.latentmoe.kernels;
    requires jmh.core;
    requires jdk.management; // per-thread allocation counters of the graph replay bench

    opens dev.latentmoe.bench.jmh to jmh.core;
}
