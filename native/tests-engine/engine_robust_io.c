/* engine_robust.c's file-system tests: FIFOs (#12 item 2), a 100 MiB header (item 5), symbolic
 * links and file bytes in messages (item 10). */
#include "engine_test.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static Model io_model(void) {
  Model md = base_model();
  md.d = 32; md.l = 16; md.n = 4; md.k = 2; md.m = 24; md.ms = 16; md.layer = 0;
  return md;
}

static void path_of(char* out, size_t n, const char* dir, const char* name) { snprintf(out, n, "%s/%s", dir, name); }

/* ------------------------------------------------------------------ (2) FIFOs */

static void fifo_in_place_of(const char* dir, const char* name, const char* needle) {
  char p[1024];
  path_of(p, sizeof p, dir, name);
  unlink(p);
  if (mkfifo(p, 0600) != 0) {
    fprintf(stderr, "mkfifo %s: %s\n", p, strerror(errno));
    exit(1);
  }
  char what[128];
  snprintf(what, sizeof what, "FIFO as %s", name);
  expect_open_error(dir, 0, what, needle);
  unlink(p);
}

int run_fifo(const char* dir) {
  alarm(20); /* a blocking open would hang the test; SIGALRM kills it (a failure, not a hang) */
  Model md = io_model();
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  fifo_in_place_of(dir, "config.json", "config.json: is a FIFO; only regular files are read");
  write_checkpoint(dir, &md);
  fifo_in_place_of(dir, "hf_quant_config.json", "hf_quant_config.json: is a FIFO");
  write_checkpoint(dir, &md);
  fifo_in_place_of(dir, "model.safetensors", "model.safetensors: is a FIFO");
  md.shards = 2;
  write_checkpoint(dir, &md);
  fifo_in_place_of(dir, "model.safetensors.index.json", "model.safetensors.index.json: is a FIFO");
  write_checkpoint(dir, &md);
  fifo_in_place_of(dir, "model-00001-of-00002.safetensors", "model-00001-of-00002.safetensors: is a FIFO");
  /* a directory in place of a file is refused the same way */
  write_checkpoint(dir, &md);
  char p[1024];
  path_of(p, sizeof p, dir, "model-00002-of-00002.safetensors");
  unlink(p);
  mkdir(p, 0700);
  expect_open_error(dir, 0, "directory as a shard", "is a directory");
  rmdir(p);
  alarm(0);
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ (5) a 100 MiB header */

static long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

int run_big_header(const char* dir) {
  Model md = io_model();
  Weights w;
  make_weights(&md, &w);
  write_checkpoint(dir, &md);
  /* The real layer's header and data, plus ~1.7 million tiny entries (sharing one data byte),
   * streamed to the file so that this process never holds the header itself. */
  char p[1024];
  path_of(p, sizeof p, dir, "model.safetensors");
  Buf img = safetensors_image(-1);
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; --k) hlen = (hlen << 8) | (unsigned char)img.p[k];
  const size_t data_n = img.n - 8 - (size_t)hlen;
  const int64_t target = 100LL * 1024 * 1024 - 4096;
  int64_t close_at = (int64_t)hlen - 1; /* the header's closing '}' (spaces pad it to 8 bytes) */
  while (close_at > 0 && img.p[8 + close_at] != '}') --close_at;
  FILE* f = fopen(p, "wb");
  fwrite("\0\0\0\0\0\0\0\0", 1, 8, f);
  fwrite(img.p + 8, 1, (size_t)close_at, f);
  int64_t written = close_at;
  long entries = 0;
  char e[96];
  while (written < target) {
    int k = snprintf(e, sizeof e, ",\"t%08ld\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", entries++);
    fwrite(e, 1, (size_t)k, f);
    written += k;
  }
  fwrite("}", 1, 1, f);
  written += 1;
  while (written % 8) { fwrite(" ", 1, 1, f); ++written; }
  fwrite(img.p + 8 + hlen, 1, data_n, f);
  fseek(f, 0, SEEK_SET);
  unsigned char le[8];
  for (int k = 0; k < 8; ++k) le[k] = (unsigned char)((uint64_t)written >> (8 * k));
  fwrite(le, 1, 8, f);
  fclose(f);
  free(img.p);
  const long before = peak_rss_kib();
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(dir, 0, &L));
  const long after = peak_rss_kib();
  printf("header of %lld bytes, %ld extra entries: peak RSS %ld KiB before open, %ld KiB after (limit 327680)\n",
         (long long)written, entries, before, after);
  /* the mapped header alone is 100 MiB of file pages; a tree of 1.7 M entries would be ~2 GB */
  CHECK(after < 320L * 1024, "opening a 100 MiB header took the peak RSS to %ld KiB", after);
  forward_vs_reference(dir, &md, &w, 3, 1e-5);
  REQUIRE_OK(lmoe_layer_close(L));
  unlink(p);
  free_weights(&w);
  return g_failures ? 1 : 0;
}

/* ------------------------------------------------------------------ (10) symbolic links */

static void no_bytes_in_message(const char* what, const char* secret_number) {
  const char* m = lmoe_last_error();
  CHECK(strstr(m, secret_number) == NULL && strstr(m, "SECRET") == NULL, "%s: the message quotes file bytes: %s",
        what, m);
}

int run_symlinks(const char* dir) {
  Model md = io_model();
  Weights w;
  make_weights(&md, &w);
  char ck[1024], outside[1024], p[1024], target[1024];
  snprintf(ck, sizeof ck, "%s/ckpt", dir);
  snprintf(outside, sizeof outside, "%s/outside", dir);
  mkdir(outside, 0700);
  write_checkpoint(ck, &md);
  /* a file outside whose first 8 bytes would be read as a header length */
  const char secret[] = "SECRET!!and more";
  uint64_t as_number = 0;
  for (int k = 7; k >= 0; --k) as_number = (as_number << 8) | (unsigned char)secret[k];
  char number[32];
  snprintf(number, sizeof number, "%llu", (unsigned long long)as_number);
  snprintf(target, sizeof target, "%s/secret.bin", outside);
  write_file(target, secret, sizeof secret);

  path_of(p, sizeof p, ck, "model.safetensors");
  unlink(p);
  if (symlink(target, p) != 0) { perror("symlink"); exit(1); }
  expect_open_error(ck, 0, "model.safetensors -> a file outside", "outside the checkpoint directory");
  no_bytes_in_message("symlink outside", number);
  unlink(p);
  /* the same bytes inside the directory: refused without quoting them */
  write_file(p, secret, sizeof secret);
  expect_open_error(ck, 0, "a non-safetensors file inside", "not a safetensors file");
  no_bytes_in_message("file inside", number);
  unlink(p);
  /* a symbolic link inside the directory is followed */
  char sub[1024], real[1024];
  snprintf(sub, sizeof sub, "%s/sub", ck);
  mkdir(sub, 0700);
  snprintf(real, sizeof real, "%s/sub/real.safetensors", ck);
  Buf img = safetensors_image(-1);
  write_file(real, img.p, img.n);
  if (symlink("sub/real.safetensors", p) != 0) { perror("symlink"); exit(1); }
  lmoe_layer* L = NULL;
  REQUIRE_OK(lmoe_layer_open(ck, 0, &L));
  REQUIRE_OK(lmoe_layer_close(L));
  unlink(p);
  /* dangling */
  if (symlink("sub/missing.safetensors", p) != 0) { perror("symlink"); exit(1); }
  expect_open_error(ck, 0, "dangling symlink", "symbolic link to a missing file");
  unlink(p);
  write_file(p, img.p, img.n);
  /* config.json pointing outside */
  char cfg[1024], cfg_out[1024];
  path_of(cfg, sizeof cfg, ck, "config.json");
  snprintf(cfg_out, sizeof cfg_out, "%s/config.json", outside);
  Buf c = config_json(&md);
  write_file(cfg_out, c.p, c.n);
  unlink(cfg);
  if (symlink(cfg_out, cfg) != 0) { perror("symlink"); exit(1); }
  expect_open_error(ck, 0, "config.json -> outside", "outside the checkpoint directory");
  unlink(cfg);
  write_file(cfg, c.p, c.n);

  /* A Hugging Face hub cache: the files of snapshots/<rev> link to ../../blobs/<hash>: accepted. */
  char repo[1024], blobs[1024], snap[1024], b1[1024], b2[1024], l1[1024], l2[1024];
  snprintf(repo, sizeof repo, "%s/hub/models--org--tiny", dir);
  snprintf(blobs, sizeof blobs, "%s/blobs", repo);
  snprintf(snap, sizeof snap, "%s/snapshots/0123abc", repo);
  char cmd[3200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s' '%s'", blobs, snap);
  if (system(cmd) != 0) return 1;
  snprintf(b1, sizeof b1, "%s/aa11", blobs);
  snprintf(b2, sizeof b2, "%s/bb22", blobs);
  write_file(b1, c.p, c.n);
  write_file(b2, img.p, img.n);
  snprintf(l1, sizeof l1, "%s/config.json", snap);
  snprintf(l2, sizeof l2, "%s/model.safetensors", snap);
  if (symlink("../../blobs/aa11", l1) != 0 || symlink("../../blobs/bb22", l2) != 0) { perror("symlink"); exit(1); }
  REQUIRE_OK(lmoe_layer_open(snap, 0, &L));
  REQUIRE_OK(lmoe_layer_close(L));
  printf("  hub cache snapshot with links into blobs/: opened\n");
  /* a snapshot link that leaves the repository is still refused */
  unlink(l2);
  if (symlink(target, l2) != 0) { perror("symlink"); exit(1); }
  expect_open_error(snap, 0, "hub snapshot -> outside blobs", "outside the checkpoint directory");
  no_bytes_in_message("hub link outside", number);

  /* a shard of a sharded checkpoint linking outside */
  md.shards = 2;
  write_checkpoint(ck, &md);
  path_of(p, sizeof p, ck, "model-00002-of-00002.safetensors");
  unlink(p);
  if (symlink(target, p) != 0) { perror("symlink"); exit(1); }
  expect_open_error(ck, 0, "shard -> outside", "outside the checkpoint directory");
  no_bytes_in_message("shard outside", number);
  free(img.p);
  free(c.p);
  free_weights(&w);
  return g_failures ? 1 : 0;
}
