import assert from "node:assert/strict";
import {
  type ArchConfig,
  parseArchConfig,
} from "../../src/build/arch_config.ts";
import { pick, prng } from "../_helpers/fixtures.ts";

const VALID: [string, ArchConfig][] = [
  [
    "arch=amd64,kernel=vmlinuz,initramfs=initrd.img",
    { arch: "amd64", layers: { kernel: "vmlinuz", initramfs: "initrd.img" } },
  ],
  [
    "kernel=./boot/vmlinuz,arch=arm64",
    { arch: "arm64", layers: { kernel: "./boot/vmlinuz" } },
  ],
  [
    "arch=amd64,rootfs=r,disk=d.img,squashfs=s.sqfs,initramfs=i,kernel=k,uki=u.efi,iso=x.iso,cmdline=c.txt,variant=metal",
    {
      arch: "amd64",
      layers: {
        rootfs: "r",
        disk: "d.img",
        squashfs: "s.sqfs",
        initramfs: "i",
        kernel: "k",
        uki: "u.efi",
        iso: "x.iso",
      },
      cmdline: "c.txt",
      variant: "metal",
    },
  ],
  [
    " arch = riscv64 , uki = /abs/path=with=equals.efi , variant=virtualization",
    {
      arch: "riscv64",
      layers: { uki: "/abs/path=with=equals.efi" },
      variant: "virtualization",
    },
  ],
];

for (const [text, expected] of VALID) {
  Deno.test(`parseArchConfig() reads ${JSON.stringify(text)}`, () => {
    assert.deepEqual(parseArchConfig(text), expected);
  });
}

Deno.test("parseArchConfig() leaves cmdline and variant out when not given", () => {
  const c = parseArchConfig("arch=amd64,kernel=k");
  assert.equal("cmdline" in c, false);
  assert.equal("variant" in c, false);
});

const INVALID: [string, string, RegExp][] = [
  [
    "an unknown key",
    "arch=amd64,kernal=vmlinuz",
    /^Unknown --config key "kernal": use one of .*kernel.*arch, cmdline, variant$/,
  ],
  [
    "an uppercase key",
    "arch=amd64,Kernel=vmlinuz",
    /^Unknown --config key "Kernel"/,
  ],
  [
    "no arch",
    "kernel=vmlinuz,initramfs=initrd",
    /^Invalid --config "kernel=vmlinuz,initramfs=initrd": arch is missing, add arch=amd64/,
  ],
  [
    "the same layer key twice",
    "arch=amd64,kernel=a,kernel=b",
    /^Invalid --config: key kernel is given twice$/,
  ],
  [
    "arch twice",
    "arch=amd64,arch=arm64,kernel=a",
    /^Invalid --config: key arch is given twice$/,
  ],
  [
    "an empty value",
    "arch=amd64,kernel=",
    /^Invalid --config: kernel has an empty value$/,
  ],
  [
    "a blank value",
    "arch=amd64,kernel=   ",
    /^Invalid --config: kernel has an empty value$/,
  ],
  [
    "an empty arch",
    "arch=,kernel=k",
    /^Invalid --config: arch has an empty value$/,
  ],
  [
    "a bad variant",
    "arch=amd64,kernel=k,variant=container",
    /^Invalid --config: variant "container" is not one of metal, virtualization$/,
  ],
  [
    "no layer",
    "arch=amd64,cmdline=c.txt",
    /^Invalid --config for amd64: no layer file given, add at least one of /,
  ],
  [
    "an arch name with a slash",
    "arch=linux/amd64,kernel=k",
    /^Invalid --config: architecture "linux\/amd64" is not a Go architecture name: use the name Go gives it, such as amd64, arm64, /,
  ],
  [
    "an uppercase arch",
    "arch=AMD64,kernel=k",
    /^Invalid --config: architecture "AMD64" is not a Go architecture name: use "amd64"$/,
  ],
  [
    "an entry without =",
    "arch=amd64,vmlinuz",
    /^Invalid --config entry "vmlinuz": expected key=value/,
  ],
  [
    "an entry without a key",
    "arch=amd64,=vmlinuz",
    /^Invalid --config entry "=vmlinuz": expected key=value/,
  ],
  [
    "a trailing comma",
    "arch=amd64,kernel=k,",
    /^Invalid --config entry "": expected key=value/,
  ],
  ["empty text", "", /^Invalid --config entry "": expected key=value/],
];

for (const [name, text, message] of INVALID) {
  Deno.test(`parseArchConfig() throws SyntaxError for ${name}`, () => {
    assert.throws(
      () => parseArchConfig(text, { name: "--config" }),
      (e: unknown) => {
        assert.ok(e instanceof SyntaxError, `threw ${String(e)}`);
        assert.match(e.message, message);
        return true;
      },
    );
  });
}

const KEYS = [
  "arch",
  "kernel",
  "initramfs",
  "rootfs",
  "disk",
  "squashfs",
  "uki",
  "iso",
  "cmdline",
  "variant",
  "kernal",
  "",
  " arch",
  "__proto__",
  "constructor",
  "toString",
];
const VALUES = [
  "amd64",
  "arm64",
  "metal",
  "virtualization",
  "",
  " ",
  "a=b",
  "./vmlinuz",
  "AMD64",
  "x".repeat(40),
  "\u0000",
  "é",
];
const CHARS = [..."=,arch kernel=amd64 metal _-./\u00e9\u0000"];

function randomText(random: () => number): string {
  const mode = random();
  if (mode < 0.3) {
    // Mostly valid: arch and a layer, plus maybe one random entry.
    const parts = [
      `arch=${pick(random, ["amd64", "arm64", "riscv64"])}`,
      `${pick(random, ["kernel", "uki", "rootfs"])}=${pick(random, VALUES)}`,
    ];
    if (random() < 0.5) {
      parts.push(`${pick(random, KEYS)}=${pick(random, VALUES)}`);
    }
    return parts.join(",");
  }
  if (mode < 0.6) {
    let s = "";
    const n = Math.floor(random() * 40);
    for (let i = 0; i < n; i++) s += pick(random, CHARS);
    return s;
  }
  const parts: string[] = [];
  const n = 1 + Math.floor(random() * 5);
  for (let i = 0; i < n; i++) {
    parts.push(
      random() < 0.1
        ? pick(random, VALUES)
        : `${pick(random, KEYS)}=${pick(random, VALUES)}`,
    );
  }
  return parts.join(",");
}

Deno.test("parseArchConfig() returns a sound config or throws SyntaxError for 2000 random strings", () => {
  const random = prng(0xa4c4);
  let parsed = 0;
  let rejected = 0;
  for (let i = 0; i < 2000; i++) {
    const text = randomText(random);
    let config: ArchConfig;
    try {
      config = parseArchConfig(text);
    } catch (e) {
      assert.ok(
        e instanceof SyntaxError,
        `${JSON.stringify(text)} threw ${String(e)}`,
      );
      rejected++;
      continue;
    }
    parsed++;
    assert.match(config.arch, /^[a-z0-9][a-z0-9_]{0,31}$/);
    const files = Object.values(config.layers);
    assert.ok(files.length > 0, JSON.stringify(text));
    for (const f of files) assert.ok(f !== "" && f === f.trim());
    assert.equal(Object.getPrototypeOf(config.layers), Object.prototype);
    if (config.variant !== undefined) {
      assert.ok(["metal", "virtualization"].includes(config.variant));
    }
  }
  assert.ok(parsed >= 20, `only ${parsed} random strings parsed`);
  assert.ok(rejected >= 1000, `only ${rejected} random strings were rejected`);
});

Deno.test("parseArchConfig() names the text in messages as the caller says, by default an architecture config", () => {
  assert.throws(
    () => parseArchConfig("arch=amd64,kernal=k"),
    {
      name: "SyntaxError",
      message: /^Unknown architecture config key "kernal": use one of /,
    },
  );
  assert.throws(
    () => parseArchConfig("arch=amd64", { name: "line 3" }),
    {
      name: "SyntaxError",
      message: /^Invalid line 3 for amd64: no layer file given/,
    },
  );
});
