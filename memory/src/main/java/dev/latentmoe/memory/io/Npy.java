package dev.latentmoe.memory.io;

import dev.latentmoe.memory.DType;
import dev.latentmoe.memory.MemoryArena;
import dev.latentmoe.memory.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads and writes NumPy {@code .npy} files (format versions 1.0, 2.0 and 3.0; C order,
 * little-endian only).
 *
 * <p>dtypes: {@code '<f4'} ↔ F32, {@code '<f2'} ↔ F16, {@code '<i4'} ↔ I32, and {@code '<u2'} ↔
 * BF16 (numpy has no bfloat16; this project stores bf16 bit patterns as uint16). {@code '<f8'} is
 * readable and converted to F32 on read (rounding to nearest); it is never written. Anything else
 * (big-endian, other types, Fortran order, object arrays) raises an {@link IllegalArgumentException}
 * naming the file. A 0-d array reads as shape {@code [1]}. The data must be exactly
 * {@code numel * itemsize} bytes after the header.
 *
 * <p>The header is a Python dict literal; it is parsed by a small strict parser accepting exactly
 * the keys {@code descr}, {@code fortran_order} and {@code shape}, at most {@value #MAX_HEADER_BYTES}
 * bytes long and of rank at most {@value #MAX_RANK}.
 */
public final class Npy {
    private Npy() {}

    static final byte[] MAGIC = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y'};
    public static final int MAX_HEADER_BYTES = 1 << 20;
    public static final int MAX_RANK = 64;
    private static final int CHUNK = 1 << 24;
    private static final int GROWTH_AXIS_MAX_DIGITS = 21;

    /** A parsed header: dtype descr, fortran flag, shape, and the data's file offset. */
    record Header(String descr, boolean fortranOrder, long[] shape, long dataOffset) {}

    /** Reads {@code file} into a new tensor allocated in {@code arena}. */
    public static Tensor read(Path file, MemoryArena arena) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            Header h = readHeader(file, ch);
            if (h.fortranOrder) throw bad(file, "fortran_order True is not supported (save a C-ordered array)");
            String descr = h.descr;
            if (descr.startsWith(">")) throw bad(file, "big-endian dtype '" + descr + "' is not supported");
            DType dtype;
            int itemSize;
            switch (descr) {
                case "<f4" -> { dtype = DType.F32; itemSize = 4; }
                case "<f8" -> { dtype = DType.F32; itemSize = 8; }
                case "<f2" -> { dtype = DType.F16; itemSize = 2; }
                case "<u2" -> { dtype = DType.BF16; itemSize = 2; }
                case "<i4" -> { dtype = DType.I32; itemSize = 4; }
                default -> throw bad(file, "unsupported dtype '" + descr + "' (supported: <f4, <f8, <f2, <u2 as bf16, <i4)");
            }
            long[] shape = h.shape.length == 0 ? new long[] {1} : h.shape;
            long numel = 1;
            long dataBytes;
            try {
                for (long d : shape) numel = Math.multiplyExact(numel, d);
                dataBytes = Math.multiplyExact(numel, (long) itemSize);
            } catch (ArithmeticException e) {
                throw bad(file, "shape " + shapeRepr(h.shape) + " overflows");
            }
            long available = ch.size() - h.dataOffset;
            if (available != dataBytes) {
                throw bad(file, "shape " + shapeRepr(h.shape) + " of '" + descr + "' needs " + dataBytes + " data bytes but the file has "
                        + available + (available < dataBytes ? " (truncated)" : ""));
            }
            Tensor t = arena.allocateTensor(dtype, shape);
            MemorySegment dst = t.segment();
            ch.position(h.dataOffset);
            if (itemSize == 8) {
                ByteBuffer buf = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
                long i = 0;
                while (i < numel) {
                    buf.clear();
                    buf.limit((int) Math.min(CHUNK, (numel - i) * 8));
                    readFully(file, ch, buf);
                    buf.flip();
                    while (buf.hasRemaining()) dst.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i++, (float) buf.getDouble());
                }
            } else {
                for (long pos = 0; pos < dataBytes; pos += CHUNK) {
                    readFully(file, ch, dst.asSlice(pos, Math.min(CHUNK, dataBytes - pos)).asByteBuffer());
                }
            }
            return t;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /** Writes a host tensor as a version 1.0 (or 2.0 if the header needs it) C-order .npy file. */
    public static void write(Path file, Tensor tensor) {
        tensor.checkAccessible();
        if (!tensor.device().isHost()) throw new IllegalArgumentException(tensor + " is not on the host");
        String descr = switch (tensor.dtype()) {
            case F32 -> "<f4";
            case BF16 -> "<u2";
            case F16 -> "<f2";
            case I32 -> "<i4";
            case U8, F8_E4M3 -> throw new IllegalArgumentException(".npy output of " + tensor.dtype() + " tensors is not supported");
        };
        long[] shape = tensor.shape();
        String dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shapeRepr(shape) + ", }";
        dict += " ".repeat(GROWTH_AXIS_MAX_DIGITS - Long.toString(shape[0]).length());
        byte[] header = headerBytes(dict);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            SafeTensorsWriter.writeFully(ch, ByteBuffer.wrap(header));
            MemorySegment s = tensor.segment();
            for (long pos = 0; pos < s.byteSize(); pos += CHUNK) {
                SafeTensorsWriter.writeFully(ch, s.asSlice(pos, Math.min(CHUNK, s.byteSize() - pos)).asByteBuffer());
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    /** Magic, version, length and the dict padded with spaces and a newline to a multiple of 64, as numpy does. */
    static byte[] headerBytes(String dict) {
        byte[] d = dict.getBytes(StandardCharsets.ISO_8859_1);
        int hlen = d.length + 1;
        boolean v1 = true;
        int prefix = MAGIC.length + 2 + 2;
        int padlen = 64 - ((prefix + hlen) % 64);
        if (hlen + padlen > 0xFFFF) {
            v1 = false;
            prefix = MAGIC.length + 2 + 4;
            padlen = 64 - ((prefix + hlen) % 64);
        }
        ByteBuffer b = ByteBuffer.allocate(prefix + hlen + padlen).order(ByteOrder.LITTLE_ENDIAN);
        b.put(MAGIC).put((byte) (v1 ? 1 : 2)).put((byte) 0);
        if (v1) b.putShort((short) (hlen + padlen));
        else b.putInt(hlen + padlen);
        b.put(d);
        for (int i = 0; i < padlen; i++) b.put((byte) ' ');
        b.put((byte) '\n');
        return b.array();
    }

    static String shapeRepr(long[] shape) {
        if (shape.length == 0) return "()";
        StringBuilder sb = new StringBuilder("(");
        for (int i = 0; i < shape.length; i++) {
            if (i > 0) sb.append(", ");
            sb.append(shape[i]);
        }
        return sb.append(shape.length == 1 ? ",)" : ")").toString();
    }

    private static IllegalArgumentException bad(Path file, String problem) {
        return new IllegalArgumentException("npy file " + file + ": " + problem);
    }

    private static void readFully(Path file, FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) throw bad(file, "truncated");
        }
    }

    private static Header readHeader(Path file, FileChannel ch) throws IOException {
        long size = ch.size();
        if (size < 10) throw bad(file, "truncated: " + size + " bytes is shorter than the magic and version");
        ByteBuffer pre = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        pre.limit((int) Math.min(12, size));
        readFully(file, ch, pre);
        pre.flip();
        for (byte m : MAGIC) {
            if (pre.get() != m) throw bad(file, "not a .npy file (bad magic)");
        }
        int major = pre.get() & 0xFF;
        int minor = pre.get() & 0xFF;
        long hlen;
        int prefix;
        if (major == 1 && minor == 0) {
            hlen = pre.getShort() & 0xFFFF;
            prefix = 10;
        } else if ((major == 2 || major == 3) && minor == 0) {
            if (pre.remaining() < 4) throw bad(file, "truncated header length");
            hlen = pre.getInt() & 0xFFFFFFFFL;
            prefix = 12;
        } else {
            throw bad(file, "unsupported format version " + major + "." + minor);
        }
        if (hlen > MAX_HEADER_BYTES) throw bad(file, "header length " + hlen + " exceeds " + MAX_HEADER_BYTES);
        if (prefix + hlen > size) throw bad(file, "truncated: header length " + hlen + " exceeds the file");
        ByteBuffer hb = ByteBuffer.allocate((int) hlen);
        ch.position(prefix);
        readFully(file, ch, hb);
        String text = new String(hb.array(), major == 3 ? StandardCharsets.UTF_8 : StandardCharsets.ISO_8859_1);
        Map<String, Object> dict;
        try {
            dict = new DictParser(text).parse();
        } catch (IllegalArgumentException e) {
            throw bad(file, "malformed header: " + e.getMessage());
        }
        if (!dict.keySet().equals(java.util.Set.of("descr", "fortran_order", "shape"))) {
            throw bad(file, "header keys must be exactly descr, fortran_order, shape; got " + dict.keySet());
        }
        if (!(dict.get("descr") instanceof String descr)) throw bad(file, "descr must be a string");
        if (!(dict.get("fortran_order") instanceof Boolean fortran)) throw bad(file, "fortran_order must be True or False");
        if (!(dict.get("shape") instanceof long[] shape)) throw bad(file, "shape must be a tuple of integers");
        return new Header(descr, fortran, shape, prefix + hlen);
    }

    /**
     * Parses the subset of Python literals numpy writes: a dict with string keys whose values are
     * strings, True/False, or tuples of non-negative integers; trailing commas allowed; the dict may
     * be followed by whitespace (padding and newline) only.
     */
    static final class DictParser {
        private final String s;
        private int pos;

        DictParser(String s) { this.s = s; }

        Map<String, Object> parse() {
            ws();
            expect('{');
            Map<String, Object> out = new LinkedHashMap<>();
            ws();
            while (peek() != '}') {
                int at = pos;
                String key = string();
                ws();
                expect(':');
                ws();
                Object v = value();
                if (out.put(key, v) != null) throw err(at, "duplicate key '" + key + "'");
                ws();
                if (peek() == ',') {
                    pos++;
                    ws();
                } else if (peek() != '}') {
                    throw err(pos, "expected ',' or '}'");
                }
            }
            pos++;
            ws();
            if (pos != s.length()) throw err(pos, "unexpected text after the dict");
            return out;
        }

        private Object value() {
            char c = peek();
            if (c == '\'' || c == '"') return string();
            if (s.startsWith("True", pos)) { pos += 4; return Boolean.TRUE; }
            if (s.startsWith("False", pos)) { pos += 5; return Boolean.FALSE; }
            if (c == '(') return tuple();
            throw err(pos, "unexpected value");
        }

        private long[] tuple() {
            expect('(');
            List<Long> dims = new ArrayList<>();
            ws();
            boolean sawComma = false;
            while (peek() != ')') {
                if (dims.size() >= MAX_RANK) throw err(pos, "more than " + MAX_RANK + " dimensions");
                dims.add(integer());
                ws();
                sawComma = false;
                if (peek() == ',') {
                    pos++;
                    sawComma = true;
                    ws();
                } else if (peek() != ')') {
                    throw err(pos, "expected ',' or ')' in a tuple");
                }
            }
            if (dims.size() == 1 && !sawComma) throw err(pos, "a one-element tuple needs a trailing comma");
            pos++;
            long[] out = new long[dims.size()];
            for (int i = 0; i < out.length; i++) out[i] = dims.get(i);
            return out;
        }

        private long integer() {
            int start = pos;
            while (pos < s.length() && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') pos++;
            if (pos == start) throw err(start, "expected a non-negative integer");
            if (pos - start > 1 && s.charAt(start) == '0') throw err(start, "leading zero in an integer");
            try {
                return Long.parseLong(s, start, pos, 10);
            } catch (NumberFormatException e) {
                throw err(start, "integer out of range");
            }
        }

        private String string() {
            char q = peek();
            if (q != '\'' && q != '"') throw err(pos, "expected a quoted string");
            int start = ++pos;
            while (pos < s.length() && s.charAt(pos) != q) {
                char c = s.charAt(pos);
                if (c == '\\' || c < 0x20) throw err(pos, "escapes and control characters are not supported in strings");
                pos++;
            }
            if (pos >= s.length()) throw err(start - 1, "unterminated string");
            return s.substring(start, pos++);
        }

        private void ws() {
            while (pos < s.length() && (s.charAt(pos) == ' ' || s.charAt(pos) == '\n' || s.charAt(pos) == '\t' || s.charAt(pos) == '\r')) pos++;
        }

        private char peek() {
            if (pos >= s.length()) throw err(pos, "unexpected end of header");
            return s.charAt(pos);
        }

        private void expect(char c) {
            if (peek() != c) throw err(pos, "expected '" + c + "'");
            pos++;
        }

        private IllegalArgumentException err(int at, String msg) {
            return new IllegalArgumentException("at offset " + at + ": " + msg);
        }
    }
}
