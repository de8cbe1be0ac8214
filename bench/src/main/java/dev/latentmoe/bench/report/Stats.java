package dev.latentmoe.bench.report;

import java.util.Arrays;
import java.util.List;

/** Summaries of repeated measurements. */
public final class Stats {
    private Stats() {}

    /** The median (the mean of the two middle values for an even count). */
    public static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        int n = s.length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    public static double median(List<Double> v) {
        return median(v.stream().mapToDouble(Double::doubleValue).toArray());
    }
}
