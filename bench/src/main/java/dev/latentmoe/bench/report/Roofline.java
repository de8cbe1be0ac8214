package dev.latentmoe.bench.report;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The roofline report: each measured call (a kernel or layer at one token count) against
 * min(bandwidth × intensity, peak FLOP/s), as a terminal table and a hand-written SVG plot
 * (log-log: FLOP/byte against GFLOP/s, the two ceilings, one point per series × T, legend).
 * A point may carry its own compute ceiling (the probe of the kernel its precision runs) and its
 * working set: when that fits the last-level cache the point is compared with compute only.
 */
public final class Roofline {
    /**
     * One measured call: bytes and FLOPs per call, seconds per call, allocation per call (NaN:
     * unknown), its compute ceiling in GFLOP/s (NaN: the report's) and the bytes its benchmark's
     * rotation of inputs touches (NaN: unknown).
     */
    public record Point(String series, int tokens, double secondsPerCall, double bytesPerCall, double flopsPerCall,
                        double allocBytesPerCall, double peakGflops, double workingSetBytes) {
        public Point(String series, int tokens, double secondsPerCall, double bytesPerCall, double flopsPerCall,
                     double allocBytesPerCall) {
            this(series, tokens, secondsPerCall, bytesPerCall, flopsPerCall, allocBytesPerCall, Double.NaN, Double.NaN);
        }

        public double bytesPerSecond() { return bytesPerCall / secondsPerCall; }
        public double flopsPerSecond() { return flopsPerCall / secondsPerCall; }
        public double intensity() { return flopsPerCall / bytesPerCall; }
    }

    private final String title;
    private final double bandwidthGBps;   // 1e9 bytes/s
    private final double peakGflops;
    private final String ceilingNote;
    private final long llcBytes;          // 0: unknown, no point is cache-resident
    private final List<Point> points = new ArrayList<>();

    public Roofline(String title, double bandwidthGBps, double peakGflops, String ceilingNote) {
        this(title, bandwidthGBps, peakGflops, ceilingNote, 0);
    }

    public Roofline(String title, double bandwidthGBps, double peakGflops, String ceilingNote, long llcBytes) {
        this.title = title;
        this.bandwidthGBps = bandwidthGBps;
        this.peakGflops = peakGflops;
        this.ceilingNote = ceilingNote;
        this.llcBytes = llcBytes;
    }

    /** The point's compute ceiling in GFLOP/s. */
    public double peak(Point p) { return Double.isNaN(p.peakGflops) ? peakGflops : p.peakGflops; }

    /** Whether the point's working set fits the last-level cache (it is not compared with DRAM bandwidth). */
    public boolean cacheResident(Point p) {
        return llcBytes > 0 && !Double.isNaN(p.workingSetBytes) && p.workingSetBytes <= llcBytes;
    }

    /** "llc", "memory" or "compute". */
    public String bound(Point p) {
        if (cacheResident(p)) return "llc";
        return bandwidthGBps * p.intensity() < peak(p) ? "memory" : "compute";
    }

    /** The attainable FLOP/s of a point: min(bandwidth × intensity, its peak), or its peak when cache-resident. */
    public double boundFlops(Point p) {
        return cacheResident(p) ? peak(p) * 1e9 : Math.min(bandwidthGBps * 1e9 * p.intensity(), peak(p) * 1e9);
    }

    public Roofline add(Point p) {
        points.add(p);
        return this;
    }

    public List<Point> points() { return List.copyOf(points); }

    /** The attainable FLOP/s at an intensity: min(bandwidth × intensity, peak). */
    public double boundFlops(double intensity) { return Math.min(bandwidthGBps * 1e9 * intensity, peakGflops * 1e9); }

    /** Achieved FLOP/s over the roofline bound; for a call without FLOPs (a pure copy), achieved bytes/s over the bandwidth. */
    public double ratio(Point p) {
        if (p.flopsPerCall <= 0) return p.bytesPerSecond() / (bandwidthGBps * 1e9);
        return p.flopsPerSecond() / boundFlops(p);
    }

    /** Points a log-log plot can show (FLOPs and bytes > 0). */
    private List<Point> plottable() {
        List<Point> out = new ArrayList<>();
        for (Point p : points) if (p.flopsPerCall > 0 && p.bytesPerCall > 0 && p.secondsPerCall > 0) out.add(p);
        return out;
    }

    public String table() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "%n%s%nceilings: memory %.1f GB/s, compute %.1f GFLOP/s (ridge %.2f FLOP/B)%s%n",
                title, bandwidthGBps, peakGflops, peakGflops / bandwidthGBps, ceilingNote.isEmpty() ? "" : "; " + ceilingNote));
        sb.append("ratio = achieved GFLOP/s / min(bandwidth x FLOP/B, compute); for calls without FLOPs, GB/s / bandwidth;\n"
                + "bound llc: the working set of the benchmark's input rotation fits the last-level cache"
                + (llcBytes > 0 ? String.format(Locale.ROOT, " (%.0f MiB)", llcBytes / 1048576.0) : " (size unknown: none marked)")
                + ", compared with compute only\n");
        Table t = new Table().column("benchmark", "%-28s", "%-28s").column("tokens", "%6s", "%6d")
                .column("ms/call", "%11s", "%11.4f").column("MB/call", "%12s", "%12.3f").column("GB/s", "%9s", "%9.2f")
                .column("GFLOP/s", "%9s", "%9.2f").column("FLOP/B", "%9s", "%9.3f").column("peak_GF/s", "%9s", "%9.1f")
                .column("bound", "%7s", "%7s").column("roof_GF/s", "%9s", "%9.2f")
                .column("ratio", "%7s", "%6.1f%%").column("alloc_B/op", "%10s", "%10s");
        for (Point p : points) {
            t.row(p.series, p.tokens, p.secondsPerCall * 1e3, p.bytesPerCall / 1e6, p.bytesPerSecond() / 1e9,
                    p.flopsPerSecond() / 1e9, p.intensity(), peak(p), bound(p), boundFlops(p) / 1e9, 100 * ratio(p),
                    Double.isNaN(p.allocBytesPerCall) ? "-" : String.format(Locale.ROOT, "%.1f", p.allocBytesPerCall));
        }
        sb.append(t);
        return sb.toString();
    }

    private static final String[] COLORS = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
            "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939"};
    private static final String[] SHAPES = {"circle", "square", "diamond", "triangle"};

    /** The plot as a standalone SVG document. */
    public String svg() {
        double w = 1000, h = 700, left = 90, right = 250, top = 60, bottom = 70;
        double pw = w - left - right, ph = h - top - bottom;
        double minI = Double.MAX_VALUE, maxI = 0, minF = Double.MAX_VALUE;
        List<Point> points = plottable();
        for (Point p : points) {
            minI = Math.min(minI, p.intensity());
            maxI = Math.max(maxI, p.intensity());
            minF = Math.min(minF, p.flopsPerSecond() / 1e9);
        }
        double ridge = peakGflops / bandwidthGBps;
        if (points.isEmpty()) { minI = ridge / 100; maxI = ridge * 10; minF = peakGflops / 100; }
        double x0 = Math.floor(Math.log10(Math.min(minI, ridge) / 1.5)), x1 = Math.ceil(Math.log10(Math.max(maxI, ridge) * 3));
        double y0 = Math.floor(Math.log10(Math.min(minF, bandwidthGBps * Math.pow(10, x0)) / 1.5));
        double y1 = Math.ceil(Math.log10(peakGflops * 2));
        if (x1 - x0 < 1) x1 = x0 + 1;
        if (y1 - y0 < 1) y1 = y0 + 1;
        final double fx0 = x0, fx1 = x1, fy0 = y0, fy1 = y1;
        java.util.function.DoubleUnaryOperator X = v -> left + (Math.log10(v) - fx0) / (fx1 - fx0) * pw;
        java.util.function.DoubleUnaryOperator Y = v -> top + ph - (Math.log10(v) - fy0) / (fy1 - fy0) * ph;

        StringBuilder s = new StringBuilder();
        s.append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        s.append(f("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                + "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n", w, h, w, h));
        s.append(f("<title>%s</title>\n", esc(title)));
        s.append(f("<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", w, h));
        s.append(f("<text x=\"%.1f\" y=\"28\" font-size=\"16\" font-weight=\"bold\">%s</text>\n", left, esc(title)));
        s.append(f("<text x=\"%.1f\" y=\"46\" fill=\"#555\">memory %.1f GB/s, compute %.1f GFLOP/s, ridge %.2f FLOP/byte%s</text>\n",
                left, bandwidthGBps, peakGflops, ridge, ceilingNote.isEmpty() ? "" : " — " + esc(ceilingNote)));
        // grid and axes
        s.append("<g id=\"grid\" stroke=\"#ddd\" stroke-width=\"1\">\n");
        for (int e = (int) x0; e <= (int) x1; e++) {
            for (int m = 1; m < 10 && e + Math.log10(m) <= x1; m++) {
                double xv = X.applyAsDouble(m * Math.pow(10, e));
                s.append(f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"%s/>\n", xv, top, xv, top + ph, m == 1 ? "" : " stroke=\"#f0f0f0\""));
            }
        }
        for (int e = (int) y0; e <= (int) y1; e++) {
            for (int m = 1; m < 10 && e + Math.log10(m) <= y1; m++) {
                double yv = Y.applyAsDouble(m * Math.pow(10, e));
                s.append(f("<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"%s/>\n", left, yv, left + pw, yv, m == 1 ? "" : " stroke=\"#f0f0f0\""));
            }
        }
        s.append("</g>\n<g id=\"axes\">\n");
        s.append(f("<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", left, top, pw, ph));
        for (int e = (int) x0; e <= (int) x1; e++) {
            double xv = X.applyAsDouble(Math.pow(10, e));
            s.append(f("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", xv, top + ph + 18, tick(e)));
        }
        for (int e = (int) y0; e <= (int) y1; e++) {
            double yv = Y.applyAsDouble(Math.pow(10, e));
            s.append(f("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", left - 6, yv + 4, tick(e)));
        }
        s.append(f("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"13\">arithmetic intensity (FLOP / byte moved)</text>\n",
                left + pw / 2, h - 25));
        s.append(f("<text transform=\"translate(22 %.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">achieved GFLOP/s</text>\n",
                top + ph / 2));
        s.append("</g>\n");
        // ceilings: the bandwidth slope up to the ridge, then the flat compute roof
        double iStart = Math.pow(10, x0), iEnd = Math.pow(10, x1);
        double iLow = Math.max(iStart, Math.pow(10, y0) / bandwidthGBps);
        s.append("<g id=\"ceilings\" stroke-width=\"2.5\" fill=\"none\">\n");
        s.append(f("<line id=\"bandwidth-ceiling\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                X.applyAsDouble(iLow), Y.applyAsDouble(bandwidthGBps * iLow), X.applyAsDouble(ridge), Y.applyAsDouble(peakGflops)));
        s.append(f("<line id=\"compute-ceiling\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                X.applyAsDouble(ridge), Y.applyAsDouble(peakGflops), X.applyAsDouble(iEnd), Y.applyAsDouble(peakGflops)));
        // the other kernels' compute ceilings (points of another precision), dashed
        java.util.TreeSet<Double> others = new java.util.TreeSet<>();
        for (Point p : points) if (!Double.isNaN(p.peakGflops) && Math.abs(p.peakGflops / peakGflops - 1) > 1e-6) others.add(p.peakGflops);
        for (double pk : others) {
            if (pk <= Math.pow(10, y0) || pk >= Math.pow(10, y1)) continue;
            s.append(f("<line class=\"compute-ceiling-other\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#777\" "
                    + "stroke-dasharray=\"6 4\"/>\n", X.applyAsDouble(pk / bandwidthGBps), Y.applyAsDouble(pk), X.applyAsDouble(iEnd),
                    Y.applyAsDouble(pk)));
        }
        s.append("</g>\n");
        double lbX = X.applyAsDouble(Math.sqrt(iLow * ridge));
        double lbY = Y.applyAsDouble(bandwidthGBps * Math.sqrt(iLow * ridge));
        double angle = Math.toDegrees(Math.atan2(Y.applyAsDouble(peakGflops) - Y.applyAsDouble(bandwidthGBps * iLow),
                X.applyAsDouble(ridge) - X.applyAsDouble(iLow)));
        s.append(f("<text x=\"%.1f\" y=\"%.1f\" transform=\"rotate(%.1f %.1f %.1f)\" text-anchor=\"middle\" fill=\"#333\">memory %.1f GB/s</text>\n",
                lbX, lbY - 8, angle, lbX, lbY - 8, bandwidthGBps));
        s.append(f("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#333\">compute %.1f GFLOP/s</text>\n",
                left + pw - 6, Y.applyAsDouble(peakGflops) - 8, peakGflops));
        // points, one group per series
        Map<String, Integer> series = new LinkedHashMap<>();
        for (Point p : points) series.putIfAbsent(p.series, series.size());
        s.append("<g id=\"points\">\n");
        for (Point p : points) {
            int i = series.get(p.series);
            String color = COLORS[i % COLORS.length];
            double px = X.applyAsDouble(p.intensity()), py = Y.applyAsDouble(p.flopsPerSecond() / 1e9);
            s.append(f("<g class=\"point\"><title>%s T=%d: %.3f ms, %.2f GB/s, %.2f GFLOP/s, %.1f%% of roofline</title>",
                    esc(p.series), p.tokens, p.secondsPerCall * 1e3, p.bytesPerSecond() / 1e9, p.flopsPerSecond() / 1e9, 100 * ratio(p)));
            s.append(marker(SHAPES[(i / COLORS.length + i) % SHAPES.length], px, py, color));
            s.append(f("<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\">%d</text></g>\n", px + 7, py - 5, color, p.tokens));
        }
        s.append("</g>\n");
        // legend
        double lx = left + pw + 20, ly = top + 10;
        s.append(f("<g id=\"legend\"><text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">series (labels: tokens T)</text>\n", lx, ly));
        for (Map.Entry<String, Integer> e : series.entrySet()) {
            int i = e.getValue();
            double yy = ly + 22 + 20 * i;
            s.append(marker(SHAPES[(i / COLORS.length + i) % SHAPES.length], lx + 8, yy - 4, COLORS[i % COLORS.length]));
            s.append(f("<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", lx + 22, yy, esc(e.getKey())));
        }
        s.append("</g>\n</svg>\n");
        return s.toString();
    }

    public void writeSvg(Path file) { ReportFile.text(file, svg()); }

    private static String marker(String shape, double x, double y, String color) {
        return switch (shape) {
            case "square" -> f("<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\"/>", x - 4.5, y - 4.5, color);
            case "diamond" -> f("<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\"/>",
                    x, y - 6, x + 6, y, x, y + 6, x - 6, y, color);
            case "triangle" -> f("<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\"/>",
                    x, y - 6, x + 6, y + 5, x - 6, y + 5, color);
            default -> f("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" stroke=\"black\" stroke-width=\"0.5\"/>", x, y, color);
        };
    }

    private static String tick(int e) {
        if (e >= 0 && e <= 4) return String.valueOf((long) Math.pow(10, e));
        if (e < 0 && e >= -3) return String.format(Locale.ROOT, "%." + (-e) + "f", Math.pow(10, e));
        return "1e" + e;
    }

    private static String esc(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }

    private static String f(String fmt, Object... args) { return String.format(Locale.ROOT, fmt, args); }
}
