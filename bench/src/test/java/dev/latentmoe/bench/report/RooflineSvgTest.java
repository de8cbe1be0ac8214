package dev.latentmoe.bench.report;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.w3c.dom.Document;
import org.w3c.dom.Element;
import org.w3c.dom.NodeList;

import java.nio.file.Path;
import javax.xml.parsers.DocumentBuilderFactory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The roofline SVG parses as XML with the JDK's parser and holds the ceilings, points and legend. */
class RooflineSvgTest {

    @Test
    void wellFormedWithCeilingsPointsAndLegend(@TempDir Path dir) throws Exception {
        Roofline roof = new Roofline("test <roofline> & co", 14.2, 60.0, "compute = PeakBench.gemm");
        String[] series = {"router super", "experts super", "forward nano"};
        int n = 0;
        for (String s : series) {
            for (int t : new int[] {1, 4, 16, 64}) {
                roof.add(new Roofline.Point(s, t, 1e-3 * t, 3e8 / t + 1e6, 2e6 * t * t, 0.0));
                n++;
            }
        }
        roof.add(new Roofline.Point("dispatch nano", 1, 1e-4, 1e6, 0, 0.0));   // a pure copy: in the table, not on the log-log plot
        assertEquals(1e10 / 14.2e9, roof.ratio(roof.points().get(n)), 1e-9);
        Path file = dir.resolve("r.svg");
        roof.writeSvg(file);
        DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
        f.setNamespaceAware(true);
        Document doc = f.newDocumentBuilder().parse(file.toFile());
        Element root = doc.getDocumentElement();
        assertEquals("svg", root.getLocalName());
        assertEquals("http://www.w3.org/2000/svg", root.getNamespaceURI());
        assertNotNull(byId(doc, "bandwidth-ceiling"));
        assertNotNull(byId(doc, "compute-ceiling"));
        Element points = byId(doc, "points");
        assertNotNull(points);
        assertEquals(n, points.getElementsByTagNameNS("*", "title").getLength());
        Element legend = byId(doc, "legend");
        assertNotNull(legend);
        String legendText = legend.getTextContent();
        for (String s : series) assertTrue(legendText.contains(s), legendText);
        String all = root.getTextContent();
        assertTrue(all.contains("arithmetic intensity"), "x axis label");
        assertTrue(all.contains("GFLOP/s"), "y axis label");
        assertTrue(all.contains("test <roofline> & co"), "escaped title round-trips");
        // ratios: a point on the bandwidth slope is bounded by bandwidth x intensity
        Roofline.Point p = roof.points().get(0);
        assertEquals(Math.min(14.2e9 * p.intensity(), 60e9), roof.boundFlops(p.intensity()), 1);
    }

    private static Element byId(Document doc, String id) {
        NodeList all = doc.getElementsByTagNameNS("*", "*");
        for (int i = 0; i < all.getLength(); i++) {
            Element e = (Element) all.item(i);
            if (id.equals(e.getAttribute("id"))) return e;
        }
        return null;
    }
}
