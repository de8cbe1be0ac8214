package dev.latentmoe.bench.report;

import java.util.Arrays;

/** A one-line progress bar on stderr, redrawn every 5%. */
public final class Progress {
    private final String what;
    private final int total;
    private int lastPercent = -1;

    public Progress(String what, int total) {
        this.what = what;
        this.total = total;
        step(0);
    }

    public void step(int done) {
        int pct = (int) (100L * done / Math.max(1, total));
        if (pct / 5 != lastPercent / 5) {
            lastPercent = pct;
            char[] bar = new char[20];
            Arrays.fill(bar, 0, pct / 5, '#');
            Arrays.fill(bar, pct / 5, 20, '.');
            System.err.printf("\r%s [%s] %3d%%", what, new String(bar), pct);
        }
    }

    public void done(String note) { System.err.printf("\r%s [####################] 100%% (%s)%n", what, note); }
}
