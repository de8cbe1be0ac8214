package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout.OfLong;
import java.lang.invoke.VarHandle;

/**
 * {@code struct lmoe_layer_memory}: where an opened layer's weights live (latentmoe_engine.h,
 * {@code lmoe_layer_memory_info}).
 *
 * <p>jextract-shaped accessors: {@code field(struct)} reads, {@code field(struct, value)} writes;
 * {@code LatentmoeHeaderDriftTest} checks the layout against the header.
 */
public final class lmoe_layer_memory {

  private lmoe_layer_memory() {}

  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      JAVA_LONG.withName("weight_bytes"),
      JAVA_LONG.withName("in_place_bytes"),
      JAVA_LONG.withName("converted_bytes"),
      JAVA_LONG.withName("mapped_bytes")).withName("lmoe_layer_memory");

  /** The layout of {@code lmoe_layer_memory}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(lmoe_layer_memory)}. */
  public static long sizeof() {
    return $LAYOUT.byteSize();
  }

  /** A struct from {@code allocator} (zeroed when that is an Arena). */
  public static MemorySegment allocate(SegmentAllocator allocator) {
    return allocator.allocate($LAYOUT);
  }

  public static final OfLong weight_bytes$LAYOUT =
      (OfLong) $LAYOUT.select(PathElement.groupElement("weight_bytes"));
  public static final long weight_bytes$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("weight_bytes"));
  public static final VarHandle weight_bytes$VH = $LAYOUT.varHandle(PathElement.groupElement("weight_bytes"));

  public static long weight_bytes(MemorySegment struct) {
    return struct.get(weight_bytes$LAYOUT, weight_bytes$OFFSET);
  }

  public static void weight_bytes(MemorySegment struct, long fieldValue) {
    struct.set(weight_bytes$LAYOUT, weight_bytes$OFFSET, fieldValue);
  }

  public static final OfLong in_place_bytes$LAYOUT =
      (OfLong) $LAYOUT.select(PathElement.groupElement("in_place_bytes"));
  public static final long in_place_bytes$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("in_place_bytes"));
  public static final VarHandle in_place_bytes$VH = $LAYOUT.varHandle(PathElement.groupElement("in_place_bytes"));

  public static long in_place_bytes(MemorySegment struct) {
    return struct.get(in_place_bytes$LAYOUT, in_place_bytes$OFFSET);
  }

  public static void in_place_bytes(MemorySegment struct, long fieldValue) {
    struct.set(in_place_bytes$LAYOUT, in_place_bytes$OFFSET, fieldValue);
  }

  public static final OfLong converted_bytes$LAYOUT =
      (OfLong) $LAYOUT.select(PathElement.groupElement("converted_bytes"));
  public static final long converted_bytes$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("converted_bytes"));
  public static final VarHandle converted_bytes$VH = $LAYOUT.varHandle(PathElement.groupElement("converted_bytes"));

  public static long converted_bytes(MemorySegment struct) {
    return struct.get(converted_bytes$LAYOUT, converted_bytes$OFFSET);
  }

  public static void converted_bytes(MemorySegment struct, long fieldValue) {
    struct.set(converted_bytes$LAYOUT, converted_bytes$OFFSET, fieldValue);
  }

  public static final OfLong mapped_bytes$LAYOUT =
      (OfLong) $LAYOUT.select(PathElement.groupElement("mapped_bytes"));
  public static final long mapped_bytes$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("mapped_bytes"));
  public static final VarHandle mapped_bytes$VH = $LAYOUT.varHandle(PathElement.groupElement("mapped_bytes"));

  public static long mapped_bytes(MemorySegment struct) {
    return struct.get(mapped_bytes$LAYOUT, mapped_bytes$OFFSET);
  }

  public static void mapped_bytes(MemorySegment struct, long fieldValue) {
    struct.set(mapped_bytes$LAYOUT, mapped_bytes$OFFSET, fieldValue);
  }
}
