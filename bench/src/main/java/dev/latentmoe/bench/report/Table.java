package dev.latentmoe.bench.report;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A text table: each column a header, the header's format and the cells' format; cells are
 * joined by one space and each line ends with a newline.
 */
public final class Table {
    private final List<String> headers = new ArrayList<>();
    private final List<String> headerFormats = new ArrayList<>();
    private final List<String> cellFormats = new ArrayList<>();
    private final StringBuilder rows = new StringBuilder();

    /** Adds a column: {@code headerFormat} (e.g. {@code %7s}) for its title, {@code cellFormat} (e.g. {@code %7.3f}) for its values. */
    public Table column(String header, String headerFormat, String cellFormat) {
        headers.add(header);
        headerFormats.add(headerFormat);
        cellFormats.add(cellFormat);
        return this;
    }

    /** Appends a row, one value per column. */
    public Table row(Object... cells) {
        if (cells.length != cellFormats.size()) {
            throw new IllegalArgumentException(cells.length + " cells for " + cellFormats.size() + " columns");
        }
        for (int i = 0; i < cells.length; i++) {
            rows.append(i == 0 ? "" : " ").append(String.format(Locale.ROOT, cellFormats.get(i), cells[i]));
        }
        rows.append('\n');
        return this;
    }

    /** The header line. */
    public String header() {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < headers.size(); i++) {
            sb.append(i == 0 ? "" : " ").append(String.format(Locale.ROOT, headerFormats.get(i), headers.get(i)));
        }
        return sb.append('\n').toString();
    }

    /** The header line and every row. */
    @Override
    public String toString() { return header() + rows; }
}
