package dev.latentmoe.bindings;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.GroupLayout;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout.OfFloat;
import java.lang.foreign.ValueLayout.OfInt;
import java.lang.invoke.VarHandle;

/**
 * {@code struct lmoe_config}: layer hyper-parameters (see latentmoe.h for each field).
 *
 * <p>jextract-shaped accessors: {@code field(struct)} reads, {@code field(struct, value)} writes;
 * {@code LatentmoeHeaderDriftTest} checks the layout against the header.
 */
public final class lmoe_config {

  private lmoe_config() {}

  // No padding needed: every field is naturally aligned at its offset (the drift test checks).
  private static final GroupLayout $LAYOUT = MemoryLayout.structLayout(
      JAVA_INT.withName("hidden_size"),
      JAVA_INT.withName("latent_size"),
      JAVA_INT.withName("num_experts"),
      JAVA_INT.withName("top_k"),
      JAVA_INT.withName("expert_intermediate_size"),
      JAVA_INT.withName("shared_intermediate_size"),
      JAVA_INT.withName("activation"),
      JAVA_INT.withName("scoring"),
      JAVA_INT.withName("norm_topk_prob"),
      JAVA_FLOAT.withName("routed_scaling_factor"),
      JAVA_INT.withName("precision")).withName("lmoe_config");

  /** The layout of {@code lmoe_config}. */
  public static final GroupLayout layout() {
    return $LAYOUT;
  }

  /** {@code sizeof(lmoe_config)}. */
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

  public static final OfInt hidden_size$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("hidden_size"));
  public static final long hidden_size$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("hidden_size"));
  public static final VarHandle hidden_size$VH = $LAYOUT.varHandle(PathElement.groupElement("hidden_size"));

  public static int hidden_size(MemorySegment struct) {
    return struct.get(hidden_size$LAYOUT, hidden_size$OFFSET);
  }

  public static void hidden_size(MemorySegment struct, int fieldValue) {
    struct.set(hidden_size$LAYOUT, hidden_size$OFFSET, fieldValue);
  }

  public static final OfInt latent_size$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("latent_size"));
  public static final long latent_size$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("latent_size"));
  public static final VarHandle latent_size$VH = $LAYOUT.varHandle(PathElement.groupElement("latent_size"));

  public static int latent_size(MemorySegment struct) {
    return struct.get(latent_size$LAYOUT, latent_size$OFFSET);
  }

  public static void latent_size(MemorySegment struct, int fieldValue) {
    struct.set(latent_size$LAYOUT, latent_size$OFFSET, fieldValue);
  }

  public static final OfInt num_experts$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("num_experts"));
  public static final long num_experts$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("num_experts"));
  public static final VarHandle num_experts$VH = $LAYOUT.varHandle(PathElement.groupElement("num_experts"));

  public static int num_experts(MemorySegment struct) {
    return struct.get(num_experts$LAYOUT, num_experts$OFFSET);
  }

  public static void num_experts(MemorySegment struct, int fieldValue) {
    struct.set(num_experts$LAYOUT, num_experts$OFFSET, fieldValue);
  }

  public static final OfInt top_k$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("top_k"));
  public static final long top_k$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("top_k"));
  public static final VarHandle top_k$VH = $LAYOUT.varHandle(PathElement.groupElement("top_k"));

  public static int top_k(MemorySegment struct) {
    return struct.get(top_k$LAYOUT, top_k$OFFSET);
  }

  public static void top_k(MemorySegment struct, int fieldValue) {
    struct.set(top_k$LAYOUT, top_k$OFFSET, fieldValue);
  }

  public static final OfInt expert_intermediate_size$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("expert_intermediate_size"));
  public static final long expert_intermediate_size$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("expert_intermediate_size"));
  public static final VarHandle expert_intermediate_size$VH = $LAYOUT.varHandle(PathElement.groupElement("expert_intermediate_size"));

  public static int expert_intermediate_size(MemorySegment struct) {
    return struct.get(expert_intermediate_size$LAYOUT, expert_intermediate_size$OFFSET);
  }

  public static void expert_intermediate_size(MemorySegment struct, int fieldValue) {
    struct.set(expert_intermediate_size$LAYOUT, expert_intermediate_size$OFFSET, fieldValue);
  }

  public static final OfInt shared_intermediate_size$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("shared_intermediate_size"));
  public static final long shared_intermediate_size$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("shared_intermediate_size"));
  public static final VarHandle shared_intermediate_size$VH = $LAYOUT.varHandle(PathElement.groupElement("shared_intermediate_size"));

  public static int shared_intermediate_size(MemorySegment struct) {
    return struct.get(shared_intermediate_size$LAYOUT, shared_intermediate_size$OFFSET);
  }

  public static void shared_intermediate_size(MemorySegment struct, int fieldValue) {
    struct.set(shared_intermediate_size$LAYOUT, shared_intermediate_size$OFFSET, fieldValue);
  }

  public static final OfInt activation$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("activation"));
  public static final long activation$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("activation"));
  public static final VarHandle activation$VH = $LAYOUT.varHandle(PathElement.groupElement("activation"));

  public static int activation(MemorySegment struct) {
    return struct.get(activation$LAYOUT, activation$OFFSET);
  }

  public static void activation(MemorySegment struct, int fieldValue) {
    struct.set(activation$LAYOUT, activation$OFFSET, fieldValue);
  }

  public static final OfInt scoring$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("scoring"));
  public static final long scoring$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("scoring"));
  public static final VarHandle scoring$VH = $LAYOUT.varHandle(PathElement.groupElement("scoring"));

  public static int scoring(MemorySegment struct) {
    return struct.get(scoring$LAYOUT, scoring$OFFSET);
  }

  public static void scoring(MemorySegment struct, int fieldValue) {
    struct.set(scoring$LAYOUT, scoring$OFFSET, fieldValue);
  }

  public static final OfInt norm_topk_prob$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("norm_topk_prob"));
  public static final long norm_topk_prob$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("norm_topk_prob"));
  public static final VarHandle norm_topk_prob$VH = $LAYOUT.varHandle(PathElement.groupElement("norm_topk_prob"));

  public static int norm_topk_prob(MemorySegment struct) {
    return struct.get(norm_topk_prob$LAYOUT, norm_topk_prob$OFFSET);
  }

  public static void norm_topk_prob(MemorySegment struct, int fieldValue) {
    struct.set(norm_topk_prob$LAYOUT, norm_topk_prob$OFFSET, fieldValue);
  }

  public static final OfFloat routed_scaling_factor$LAYOUT =
      (OfFloat) $LAYOUT.select(PathElement.groupElement("routed_scaling_factor"));
  public static final long routed_scaling_factor$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("routed_scaling_factor"));
  public static final VarHandle routed_scaling_factor$VH = $LAYOUT.varHandle(PathElement.groupElement("routed_scaling_factor"));

  public static float routed_scaling_factor(MemorySegment struct) {
    return struct.get(routed_scaling_factor$LAYOUT, routed_scaling_factor$OFFSET);
  }

  public static void routed_scaling_factor(MemorySegment struct, float fieldValue) {
    struct.set(routed_scaling_factor$LAYOUT, routed_scaling_factor$OFFSET, fieldValue);
  }

  public static final OfInt precision$LAYOUT =
      (OfInt) $LAYOUT.select(PathElement.groupElement("precision"));
  public static final long precision$OFFSET = $LAYOUT.byteOffset(PathElement.groupElement("precision"));
  public static final VarHandle precision$VH = $LAYOUT.varHandle(PathElement.groupElement("precision"));

  public static int precision(MemorySegment struct) {
    return struct.get(precision$LAYOUT, precision$OFFSET);
  }

  public static void precision(MemorySegment struct, int fieldValue) {
    struct.set(precision$LAYOUT, precision$OFFSET, fieldValue);
  }

}
