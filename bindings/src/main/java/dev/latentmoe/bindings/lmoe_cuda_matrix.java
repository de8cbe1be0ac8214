package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout.OfInt;
import java.lang.invoke.VarHandle;

/**
 * {@code struct lmoe_cuda_matrix}: one DEVICE weight matrix (all experts of one kind, stacked): format, data,
 * NVFP4 block scales, per-tensor scales (one float per expert) and the optional W8A8 input scales, all device
 * pointers (see latentmoe_cuda.h).
 *
 * <p>jextract-shaped accessors: {@code field(struct)} reads, {@code field(struct, value)} writes;
 * {@code LatentmoeHeaderDriftTest} checks the layout against the header.
 */
public final class lmoe_cuda_matrix {

  private lmoe_cuda_matrix() {}

  // No padding needed: every field is naturally aligned at its offset (the drift test checks).
  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      JAVA_INT.withName("format"),
      JAVA_INT.withName("reserved"),
      ADDRESS.withName("data"),
      ADDRESS.withName("block_scales"),
      ADDRESS.withName("scales"),
      ADDRESS.withName("input_scales")).withName("lmoe_cuda_matrix");

  /** The layout of {@code lmoe_cuda_matrix}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(lmoe_cuda_matrix)}. */
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

  public static final AddressLayout scales$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("scales"));
  public static final long scales$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("scales"));
  public static final VarHandle scales$VH = $LAYOUT.varHandle(PathElement.groupElement("scales"));

  public static MemorySegment scales(MemorySegment struct) {
    return struct.get(scales$LAYOUT, scales$OFFSET);
  }

  public static void scales(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(scales$LAYOUT, scales$OFFSET, fieldValue);
  }

  public static final AddressLayout input_scales$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("input_scales"));
  public static final long input_scales$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("input_scales"));
  public static final VarHandle input_scales$VH = $LAYOUT.varHandle(PathElement.groupElement("input_scales"));

  public static MemorySegment input_scales(MemorySegment struct) {
    return struct.get(input_scales$LAYOUT, input_scales$OFFSET);
  }

  public static void input_scales(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(input_scales$LAYOUT, input_scales$OFFSET, fieldValue);
  }
}
