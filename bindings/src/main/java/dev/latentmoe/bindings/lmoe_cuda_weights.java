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
 * {@code struct lmoe_cuda_weights}: DEVICE weight pointers of the CUDA backend (see latentmoe_cuda.h:
 * expert matrices are one contiguous [N, rows, cols] array per kind, all bf16 but the gate).
 *
 * <p>jextract-shaped accessors: {@code field(struct)} reads, {@code field(struct, value)} writes;
 * {@code LatentmoeHeaderDriftTest} checks the layout against the header.
 */
public final class lmoe_cuda_weights {

  private lmoe_cuda_weights() {}

  // No padding needed: every field is naturally aligned at its offset (the drift test checks).
  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      JAVA_INT.withName("weight_dtype"),
      JAVA_INT.withName("gate_dtype"),
      ADDRESS.withName("gate"),
      ADDRESS.withName("gate_bias"),
      ADDRESS.withName("latent_down"),
      ADDRESS.withName("latent_up"),
      ADDRESS.withName("expert_up"),
      ADDRESS.withName("expert_gate"),
      ADDRESS.withName("expert_down"),
      ADDRESS.withName("shared_up"),
      ADDRESS.withName("shared_gate"),
      ADDRESS.withName("shared_down")).withName("lmoe_cuda_weights");

  /** The layout of {@code lmoe_cuda_weights}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(lmoe_cuda_weights)}. */
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

  public static final OfInt weight_dtype$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("weight_dtype"));
  public static final long weight_dtype$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("weight_dtype"));
  public static final VarHandle weight_dtype$VH = $LAYOUT.varHandle(PathElement.groupElement("weight_dtype"));

  public static int weight_dtype(MemorySegment struct) {
    return struct.get(weight_dtype$LAYOUT, weight_dtype$OFFSET);
  }

  public static void weight_dtype(MemorySegment struct, int fieldValue) {
    struct.set(weight_dtype$LAYOUT, weight_dtype$OFFSET, fieldValue);
  }

  public static final OfInt gate_dtype$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("gate_dtype"));
  public static final long gate_dtype$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("gate_dtype"));
  public static final VarHandle gate_dtype$VH = $LAYOUT.varHandle(PathElement.groupElement("gate_dtype"));

  public static int gate_dtype(MemorySegment struct) {
    return struct.get(gate_dtype$LAYOUT, gate_dtype$OFFSET);
  }

  public static void gate_dtype(MemorySegment struct, int fieldValue) {
    struct.set(gate_dtype$LAYOUT, gate_dtype$OFFSET, fieldValue);
  }

  public static final AddressLayout gate$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("gate"));
  public static final long gate$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("gate"));
  public static final VarHandle gate$VH = $LAYOUT.varHandle(PathElement.groupElement("gate"));

  public static MemorySegment gate(MemorySegment struct) {
    return struct.get(gate$LAYOUT, gate$OFFSET);
  }

  public static void gate(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(gate$LAYOUT, gate$OFFSET, fieldValue);
  }

  public static final AddressLayout gate_bias$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("gate_bias"));
  public static final long gate_bias$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("gate_bias"));
  public static final VarHandle gate_bias$VH = $LAYOUT.varHandle(PathElement.groupElement("gate_bias"));

  public static MemorySegment gate_bias(MemorySegment struct) {
    return struct.get(gate_bias$LAYOUT, gate_bias$OFFSET);
  }

  public static void gate_bias(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(gate_bias$LAYOUT, gate_bias$OFFSET, fieldValue);
  }

  public static final AddressLayout latent_down$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("latent_down"));
  public static final long latent_down$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("latent_down"));
  public static final VarHandle latent_down$VH = $LAYOUT.varHandle(PathElement.groupElement("latent_down"));

  public static MemorySegment latent_down(MemorySegment struct) {
    return struct.get(latent_down$LAYOUT, latent_down$OFFSET);
  }

  public static void latent_down(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(latent_down$LAYOUT, latent_down$OFFSET, fieldValue);
  }

  public static final AddressLayout latent_up$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("latent_up"));
  public static final long latent_up$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("latent_up"));
  public static final VarHandle latent_up$VH = $LAYOUT.varHandle(PathElement.groupElement("latent_up"));

  public static MemorySegment latent_up(MemorySegment struct) {
    return struct.get(latent_up$LAYOUT, latent_up$OFFSET);
  }

  public static void latent_up(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(latent_up$LAYOUT, latent_up$OFFSET, fieldValue);
  }

  public static final AddressLayout expert_up$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("expert_up"));
  public static final long expert_up$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("expert_up"));
  public static final VarHandle expert_up$VH = $LAYOUT.varHandle(PathElement.groupElement("expert_up"));

  public static MemorySegment expert_up(MemorySegment struct) {
    return struct.get(expert_up$LAYOUT, expert_up$OFFSET);
  }

  public static void expert_up(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(expert_up$LAYOUT, expert_up$OFFSET, fieldValue);
  }

  public static final AddressLayout expert_gate$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("expert_gate"));
  public static final long expert_gate$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("expert_gate"));
  public static final VarHandle expert_gate$VH = $LAYOUT.varHandle(PathElement.groupElement("expert_gate"));

  public static MemorySegment expert_gate(MemorySegment struct) {
    return struct.get(expert_gate$LAYOUT, expert_gate$OFFSET);
  }

  public static void expert_gate(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(expert_gate$LAYOUT, expert_gate$OFFSET, fieldValue);
  }

  public static final AddressLayout expert_down$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("expert_down"));
  public static final long expert_down$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("expert_down"));
  public static final VarHandle expert_down$VH = $LAYOUT.varHandle(PathElement.groupElement("expert_down"));

  public static MemorySegment expert_down(MemorySegment struct) {
    return struct.get(expert_down$LAYOUT, expert_down$OFFSET);
  }

  public static void expert_down(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(expert_down$LAYOUT, expert_down$OFFSET, fieldValue);
  }

  public static final AddressLayout shared_up$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("shared_up"));
  public static final long shared_up$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("shared_up"));
  public static final VarHandle shared_up$VH = $LAYOUT.varHandle(PathElement.groupElement("shared_up"));

  public static MemorySegment shared_up(MemorySegment struct) {
    return struct.get(shared_up$LAYOUT, shared_up$OFFSET);
  }

  public static void shared_up(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(shared_up$LAYOUT, shared_up$OFFSET, fieldValue);
  }

  public static final AddressLayout shared_gate$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("shared_gate"));
  public static final long shared_gate$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("shared_gate"));
  public static final VarHandle shared_gate$VH = $LAYOUT.varHandle(PathElement.groupElement("shared_gate"));

  public static MemorySegment shared_gate(MemorySegment struct) {
    return struct.get(shared_gate$LAYOUT, shared_gate$OFFSET);
  }

  public static void shared_gate(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(shared_gate$LAYOUT, shared_gate$OFFSET, fieldValue);
  }

  public static final AddressLayout shared_down$LAYOUT =
      (AddressLayout) $LAYOUT.select(PathElement.groupElement("shared_down"));
  public static final long shared_down$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("shared_down"));
  public static final VarHandle shared_down$VH = $LAYOUT.varHandle(PathElement.groupElement("shared_down"));

  public static MemorySegment shared_down(MemorySegment struct) {
    return struct.get(shared_down$LAYOUT, shared_down$OFFSET);
  }

  public static void shared_down(MemorySegment struct, MemorySegment fieldValue) {
    struct.set(shared_down$LAYOUT, shared_down$OFFSET, fieldValue);
  }

}
