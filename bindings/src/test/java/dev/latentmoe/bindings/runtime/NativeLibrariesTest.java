package dev.latentmoe.bindings.runtime;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.latentmoe.bindings.latentmoe_h;
import java.lang.foreign.FunctionDescriptor;
import java.lang.invoke.MethodHandle;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Library location, extraction and error reporting; none of it needs the real library. */
class NativeLibrariesTest {

  @Test
  void thisPlatformIsSupported() {
    assertNull(NativeLibraries.unsupportedPlatform());
  }

  @Test
  void prefersTheDirectory(@TempDir Path dir) throws Exception {
    Path lib = Files.writeString(dir.resolve("liblmoe_dir_test.so"), "x");
    assertEquals(lib.toAbsolutePath(), NativeLibraries.locate("lmoe_dir_test", dir.toString()));
  }

  @Test
  void fallsBackToTheJarResource(@TempDir Path empty) throws Exception {
    Path p = NativeLibraries.locate("lmoe_resource_test", empty.toString());
    assertTrue(p.getFileName().toString().equals("liblmoe_resource_test.so"), p::toString);
    assertTrue(Files.readString(p).startsWith("not an ELF file"));
    // Extracted once per JVM into the same directory.
    assertEquals(p.getParent(), NativeLibraries.locate("lmoe_resource_test", null).getParent());
  }

  @Test
  void extractsFromANativeJarSeenOnlyByTheContextLoader(@TempDir Path dir) throws Exception {
    // A jar laid out like latentmoe-native's classified jars, outside this module and its loader.
    Path jar = dir.resolve("latentmoe-native-9.9.9-linux-x86_64.jar");
    try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar))) {
      out.putNextEntry(new JarEntry("native/linux-x86_64/liblmoe_jar_test.so"));
      out.write("not an ELF file either".getBytes(StandardCharsets.UTF_8));
      out.putNextEntry(new JarEntry("native/linux-x86_64/" + NativeLibraries.PROPERTIES));
      out.write("version=9.9.9\nvariant=cpu\n".getBytes(StandardCharsets.UTF_8));
    }
    Thread me = Thread.currentThread();
    ClassLoader before = me.getContextClassLoader();
    try (URLClassLoader loader = new URLClassLoader(new URL[] {jar.toUri().toURL()}, null)) {
      assertNull(NativeLibraries.class.getClassLoader().getResource(
          "native/linux-x86_64/liblmoe_jar_test.so"), "the test jar must not be on the class path");
      me.setContextClassLoader(loader);
      NativeLibraries.Located found = NativeLibraries.find("lmoe_jar_test", null);
      assertEquals("not an ELF file either", Files.readString(found.path()));
      assertTrue(found.source().contains(jar.getFileName().toString()), found::source);
      assertTrue(found.source().endsWith("(latentmoe-native 9.9.9, cpu)"), found::source);
    } finally {
      me.setContextClassLoader(before);
    }
  }

  @Test
  void missingLibraryNamesEveryPlaceTried(@TempDir Path empty) {
    UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class,
        () -> NativeLibraries.locate("lmoe_nowhere", empty.toString()));
    assertTrue(e.getMessage().contains(empty.resolve("liblmoe_nowhere.so").toString()), e::getMessage);
    assertTrue(e.getMessage().contains("/native/linux-x86_64/liblmoe_nowhere.so"), e::getMessage);
    assertTrue(e.getMessage().contains("dev.latentmoe:latentmoe-native with classifier linux-x86_64"),
        e::getMessage);
    NativeLibraries.Result r = NativeLibraries.tryLoad("lmoe_nowhere");
    assertTrue(!r.isLoaded() && r.reason().contains("liblmoe_nowhere.so"), r::toString);
  }

  @Test
  void unloadableFileGivesTheLoaderReason(@TempDir Path dir) throws Exception {
    // An ELF the loader refuses (a PIE executable); a non-ELF file would work too but makes
    // HotSpot print an exec-stack warning into the test log.
    Files.copy(Path.of(System.getProperty("java.home"), "bin", "java"), dir.resolve("liblmoe_garbage.so"));
    UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class,
        () -> NativeLibraries.load("lmoe_garbage", dir.toString()));
    assertTrue(e.getMessage().startsWith("cannot load " + dir.resolve("liblmoe_garbage.so")),
        e::getMessage);
  }

  @Test
  void unavailableHandlesThrowTheReasonWhenCalled() {
    MethodHandle v = Downcalls.unavailable("f_void", FunctionDescriptor.ofVoid(JAVA_INT), "why");
    MethodHandle i = Downcalls.unavailable("f_int",
        FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), "because");
    assertEquals(FunctionDescriptor.ofVoid(JAVA_INT).toMethodType(), v.type());
    UnsatisfiedLinkError e1 = assertThrows(UnsatisfiedLinkError.class, () -> v.invoke(1));
    assertEquals("f_void: why", e1.getMessage());
    UnsatisfiedLinkError e2 = assertThrows(UnsatisfiedLinkError.class,
        () -> i.invoke(java.lang.foreign.MemorySegment.NULL, 3L));
    assertEquals("f_int: because", e2.getMessage());
  }

  @Test
  void checkBuildsExceptionsFromAnyMessageGetter() {
    NativeErrors.check(0, "ok", s -> "unused", () -> "unused");
    LatentMoeNativeException e = assertThrows(LatentMoeNativeException.class,
        () -> NativeErrors.check(latentmoe_h.LMOE_ERR_UNSUPPORTED, "lmoe_x", latentmoe_h::statusName,
            () -> "no AVX"));
    assertEquals(2, e.status());
    assertEquals("no AVX", e.nativeMessage());
    assertEquals("lmoe_x failed: LMOE_ERR_UNSUPPORTED (2): no AVX", e.getMessage());
    LatentMoeNativeException cuda = assertThrows(LatentMoeNativeException.class,
        () -> NativeErrors.check(700, "cudaMemcpy", s -> "cudaError " + s, () -> ""));
    assertEquals("cudaMemcpy failed: cudaError 700 (700)", cuda.getMessage());
  }
}
