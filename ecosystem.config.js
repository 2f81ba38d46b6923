// pm2 processes for a Dojo deployment: the validator with its synthetic API, or the miner with
// its worker platform, and optionally the autoupdater (run.sh) for them.
//
//   cp ecosystem.local.example.js ecosystem.local.js    # once, then edit ecosystem.local.js
//   pm2 start ecosystem.config.js                       # the processes of ROLE
//   pm2 start ecosystem.config.js --only dojo-validator # one of them
//   pm2 restart ecosystem.config.js --update-env        # after editing ecosystem.local.js
//   pm2 save && pm2 startup                             # keep them across reboots
//
// This file needs no edit: the settings (network, role, wallets, ports) are read from
// ecosystem.local.js next to it, which git does not track, so the autoupdater can keep this
// checkout on the newest release; ecosystem.local.example.js lists them with their defaults.
// Secrets (DOJO_API_KEY, OPENROUTER_API_KEY, WANDB_API_KEY, ...) go in .env next to this file,
// which every process reads (start from .env.miner.example or .env.validator.example). Flags
// given here override .env.

const fs = require("fs");
const os = require("os");
const path = require("path");

const LOCAL = path.join(__dirname, "ecosystem.local.js");

// The settings and their defaults: those of the committed example, which explains each.
const DEFAULTS = require(path.join(__dirname, "ecosystem.local.example.js"));

function fail(message) {
  throw new Error(`ecosystem.config.js: ${message}`);
}

function settings() {
  const local = fs.existsSync(LOCAL) ? require(LOCAL) : {};
  const unknown = Object.keys(local).filter((key) => !(key in DEFAULTS));
  if (unknown.length) {
    fail(`ecosystem.local.js sets ${unknown.join(", ")}, which is not a setting; the settings are ${Object.keys(DEFAULTS).join(", ")}`);
  }
  return { ...DEFAULTS, ...local };
}

const S = settings();

// The virtualenv that Dojo is installed in (`pip install -r requirements.txt -e .`):
// .venv (scripts/demo.sh) or env (the README's install steps), whichever exists, as run.sh.
const VENV = S.VENV || [".venv", "env"].find((dir) => fs.existsSync(path.join(__dirname, dir, "bin", "python"))) || ".venv";
const python = path.resolve(__dirname, VENV, "bin", "python");
const dojoCli = path.resolve(__dirname, VENV, "bin", "dojo");

// Each role signs with its own hotkey: one hotkey as both miner and validator on a subnet
// would be the validator scoring itself.
const WALLETS = {
  validator: { name: S.VALIDATOR_WALLET_NAME, hotkey: S.VALIDATOR_WALLET_HOTKEY },
  miner: { name: S.MINER_WALLET_NAME, hotkey: S.MINER_WALLET_HOTKEY },
};

// The hotkey's address from the wallet on disk, when it can be read.
function hotkeyAddress(wallet) {
  const root = (S.WALLET_PATH || "~/.bittensor/wallets").replace(/^~(?=$|\/)/, os.homedir());
  try {
    return JSON.parse(fs.readFileSync(path.join(root, wallet.name, "hotkeys", wallet.hotkey), "utf8")).ss58Address || null;
  } catch (error) {
    return null;
  }
}

function neuronArgs(type, port) {
  const wallet = WALLETS[type];
  return [
    "--netuid", String(S.NETUID),
    "--wallet.name", wallet.name,
    "--wallet.hotkey", wallet.hotkey,
    ...(S.WALLET_PATH ? ["--wallet.path", S.WALLET_PATH] : []),
    "--logging.debug",
    "--axon.port", String(port),
    "--neuron.type", type,
    "--scoring_method", "dojo",
    "--subtensor.network", S.NETWORK,
  ];
}

// What every process shares: run from the repository (so .env is found) with the venv's
// python, restarted when it dies, and given 30 s to finish in-flight work on stop (pm2 sends
// SIGINT, then SIGKILL after kill_timeout). treekill false: pm2 signals the process alone,
// not its children, so the validator finishes its Weights & Biases run before wandb's own
// process ends (with the whole tree signalled, wandb's process died first and the run lost
// its last records).
const common = {
  cwd: __dirname,
  interpreter: python,
  autorestart: true,
  restart_delay: 5000,
  kill_timeout: 30000,
  treekill: false,
};

const processes = {
  "dojo-validator": {
    ...common,
    script: path.join(__dirname, "main_validator.py"),
    args: neuronArgs("validator", S.VALIDATOR_AXON_PORT),
  },
  "dojo-synthetic": {
    ...common,
    script: dojoCli,
    args: ["synthetic", "serve", "--backend", S.SYNTHETIC_BACKEND, "--port", String(S.SYNTHETIC_PORT)],
  },
  "dojo-miner": {
    ...common,
    script: path.join(__dirname, "main_miner.py"),
    args: neuronArgs("miner", S.MINER_AXON_PORT),
  },
  "dojo-platform": {
    ...common,
    script: dojoCli,
    args: [
      "platform", "serve",
      "--subtensor.network", S.NETWORK,
      "--netuid", String(S.NETUID),
      "--host", S.PLATFORM_HOST,
      "--port", String(S.PLATFORM_PORT),
      ...(S.PLATFORM_PUBLIC_URL ? ["--public-url", S.PLATFORM_PUBLIC_URL] : []),
    ],
  },
};

const roles = {
  validator: ["dojo-validator", "dojo-synthetic"],
  miner: ["dojo-miner", "dojo-platform"],
  all: Object.keys(processes),
};
if (!roles[S.ROLE]) {
  fail(`ROLE is "${S.ROLE}"; set it to "validator", "miner" or "all" in ecosystem.local.js`);
}

if (S.ROLE === "all") {
  const [v, m] = [WALLETS.validator, WALLETS.miner];
  const [va, ma] = [hotkeyAddress(v), hotkeyAddress(m)];
  if ((v.name === m.name && v.hotkey === m.hotkey) || (va && va === ma)) {
    fail(
      `ROLE "all" runs a miner and a validator, each with its own hotkey, but both would sign as ` +
        `${v.name}/${v.hotkey}${va && va === ma ? ` (${va})` : ""}: set MINER_WALLET_NAME/MINER_WALLET_HOTKEY ` +
        `and VALIDATOR_WALLET_NAME/VALIDATOR_WALLET_HOTKEY to two different hotkeys in ecosystem.local.js`,
    );
  }
}

const apps = roles[S.ROLE].map((name) => ({ name, ...processes[name] }));

if (S.AUTOUPDATE) {
  // run.sh checks every UPDATE_INTERVAL seconds and restarts ROLE's processes on a newer
  // signed release. This file starts them, so run.sh starts nothing (AUTOUPDATE_START_CMD
  // ":"). Its other settings (top of run.sh) go in AUTOUPDATE_ENV.
  apps.push({
    name: "dojo-autoupdater",
    cwd: __dirname,
    script: path.join(__dirname, "run.sh"),
    interpreter: "bash",
    autorestart: true,
    restart_delay: 60000,
    env: {
      UPDATE_INTERVAL: "1200",
      AUTOUPDATE_PROCESSES: roles[S.ROLE].join(" "),
      AUTOUPDATE_PYTHON: python,
      AUTOUPDATE_START_CMD: ":",
      ...S.AUTOUPDATE_ENV,
    },
  });
}

// `pm2 start ecosystem.config.js --only NAME` with a NAME that ROLE does not run would start
// nothing and exit 0: say so instead.
function onlyNames(argv) {
  const names = [];
  argv.forEach((arg, i) => {
    if (arg === "--only" && i + 1 < argv.length) names.push(...argv[i + 1].split(","));
    else if (arg.startsWith("--only=")) names.push(...arg.slice("--only=".length).split(","));
  });
  return names.map((name) => name.trim()).filter(Boolean);
}

const known = apps.map((app) => app.name);
const missing = onlyNames(process.argv).filter((name) => !known.includes(name));
if (missing.length) {
  const hint = missing
    .map((name) => {
      const role = Object.keys(roles).find((r) => r !== "all" && roles[r].includes(name));
      if (role) return `${name} runs with ROLE "${role}" or "all"`;
      if (name === "dojo-autoupdater") return `${name} runs with AUTOUPDATE true`;
      return `${name} is not a Dojo process (${Object.keys(processes).join(", ")}, dojo-autoupdater)`;
    })
    .join("; ");
  fail(`--only ${missing.join(",")}: ROLE "${S.ROLE}" runs ${known.join(", ")}; ${hint} (ecosystem.local.js)`);
}

module.exports = { apps };
