package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout.OfFloat;
import java.lang.foreign.ValueLayout.OfInt;
import java.lang.invoke.VarHandle;

/**
 * {@code struct lmoe_matrix}: one weight matrix descriptor: format, data, NVFP4 block scales, per-tensor scale (see latentmoe.h).
 *
 * <p>jextract-shaped accessors: {@code field(struct)} reads, {@code field(struct, value)} writes;
 * {@code LatentmoeHeaderDriftTest} checks the layout against the header.
 */
public final class lmoe_matrix {

  private lmoe_matrix() {}

  // No padding needed: every field is naturally aligned at its offset (the drift test checks).
  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      JAVA_INT.withName("format"),
      JAVA_INT.withName("reserved"),
      ADDRESS.withName("data"),
      ADDRESS.withName("block_scales"),
      JAVA_FLOAT.withName("scale"),
      JAVA_FLOAT.withName("input_scale")).withName("lmoe_matrix");

  /** The layout of {@code lmoe_matrix}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(lmoe_matrix)}. */
  public static long sizeof() {
    return $LAYOUT.byteSize();
  }

  /** A struct from {@code allocator} (zeroed when that is an Arena). */
  public static MemorySegment allocate(SegmentAllocator allocator) {
    return allocator.allocate($LAYOUT);
  }

  /** An array of {@code count} structs from {@code allocator} (zeroed when that is an Arena). */
  public static MemorySegment allocateArray(long count, SegmentAllocator allocator) {
    return allocator.allocate(MemoryLayout.sequenceLayout(count, $LAYOUT));
  }

  /** Element {@code index} of an array of structs. */
  public static MemorySegment asSlice(MemorySegment array, long index) {
    return array.asSlice($LAYOUT.byteSize() * index, $LAYOUT);
  }

  public static final OfInt format$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("format"));
  public static final long format$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("format"));
  public static final VarHandle format$VH = $LAYOUT.varHandle(PathElement.groupElement("format"));

  public static int format(MemorySegment struct) {
    return struct.get(format$LAYOUT, format$OFFSET);
  }

  public static void format(MemorySegment struct, int fieldValue) {
    struct.set(format$LAYOUT, format$OFFSET, fieldValue);
  }

  public static final OfInt reserved$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("reserved"));
  public static final long reserved$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("reserved"));
  public static final VarHandle reserved$VH = $LAYOUT.varHandle(PathElement.groupElement("reserved"));

  public static int reserved(MemorySegment struct) {
    return struct.get(reserved$LAYOUT, reserved$OFFSET);
  }

  public static void reserved(MemorySegment struct, int fieldValue) {
    struct.set(reserved$LAYOUT, reserved$OFFSET, fieldValue);
  }

  public static final AddressLayout data$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("data"));
  public static final long data$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("data"));
  public static final VarHandle data$VH = $LAYOUT.varHandle(PathElement.groupElement("data"));

  public static MemorySegment data(MemorySegment struct) {
    return struct.get(data$LAYOUT, data$OFFSET);
  }

  public static void data(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(data$LAYOUT, data$OFFSET, fieldValue);
  }

  public static final AddressLayout block_scales$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("block_scales"));
  public static final long block_scales$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("block_scales"));
  public static final VarHandle block_scales$VH = $LAYOUT.varHandle(PathElement.groupElement("block_scales"));

  public static MemorySegment block_scales(MemorySegment struct) {
    return struct.get(block_scales$LAYOUT, block_scales$OFFSET);
  }

  public static void block_scales(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(block_scales$LAYOUT, block_scales$OFFSET, fieldValue);
  }

  public static final OfFloat scale$LAYOUT =
      (OfFloat) $LAYOUT.select(PathElement.groupElement("scale"));
  public static final long scale$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("scale"));
  public static final VarHandle scale$VH = $LAYOUT.varHandle(PathElement.groupElement("scale"));

  public static float scale(MemorySegment struct) {
    return struct.get(scale$LAYOUT, scale$OFFSET);
  }

  public static void scale(MemorySegment struct, float fieldValue) {
    struct.set(scale$LAYOUT, scale$OFFSET, fieldValue);
  }

  public static final OfFloat input_scale$LAYOUT =
      (OfFloat) $LAYOUT.select(PathElement.groupElement("input_scale"));
  public static final long input_scale$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("input_scale"));
  public static final VarHandle input_scale$VH = $LAYOUT.varHandle(PathElement.groupElement("input_scale"));

  public static float input_scale(MemorySegment struct) {
    return struct.get(input_scale$LAYOUT, input_scale$OFFSET);
  }

  public static void input_scale(MemorySegment struct, float fieldValue) {
    struct.set(input_scale$LAYOUT, input_scale$OFFSET, fieldValue);
  }
}
