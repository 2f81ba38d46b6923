// pm2 processes for a Dojo deployment: the validator with its synthetic API, or the miner with
// its worker platform, and optionally the autoupdater (run.sh) for them.
//
//   pm2 start ecosystem.config.js                       # the processes of ROLE below
//   pm2 start ecosystem.config.js --only dojo-validator # one of them
//   pm2 restart ecosystem.config.js --update-env        # after editing this file
//   pm2 save && pm2 startup                             # keep them across reboots
//
// Edit the values in this first block; nothing below it needs changing. Secrets (DOJO_API_KEY,
// OPENROUTER_API_KEY, WANDB_API_KEY, ...) go in .env next to this file, which every process
// reads (start from .env.miner.example or .env.validator.example). Flags given here override
// .env.

const fs = require("fs");
const path = require("path");

// --- edit these ---------------------------------------------------------------------------

// Testnet: NETWORK "test", NETUID 98.  Mainnet: NETWORK "finney", NETUID 52.
const NETWORK = "test";
const NETUID = 98;

// The coldkey (wallet name) and hotkey registered on NETUID, under ~/.bittensor/wallets.
const WALLET_NAME = "coldkey";
const WALLET_HOTKEY = "hotkey";

// "validator": dojo-validator and dojo-synthetic.  "miner": dojo-miner and dojo-platform.
// "all": all four (a local test machine; never one hotkey as miner and validator on a net).
const ROLE = "validator";

// true adds dojo-autoupdater (run.sh), which restarts ROLE's processes on a newer release.
const AUTOUPDATE = false;

// The signed endpoints the neurons serve (the original Dojo ports); open them in the firewall.
const MINER_AXON_PORT = 9602;
const VALIDATOR_AXON_PORT = 9603;

// The worker platform: where it listens, and the URL workers and the miner reach it at
// ("" = http://host:port). Put the same URL in the miner's .env as DOJO_API_BASE_URL.
const PLATFORM_HOST = "0.0.0.0";
const PLATFORM_PORT = 8080;
const PLATFORM_PUBLIC_URL = "";

// The synthetic API: "procedural" (offline) or "llm" (needs OPENROUTER_API_KEY in .env).
// The validator uses it when its .env has SYNTHETIC_API_URL="http://127.0.0.1:5003".
const SYNTHETIC_BACKEND = "procedural";
const SYNTHETIC_PORT = 5003;

// The virtualenv that Dojo is installed in (`pip install -r requirements.txt -e .`):
// .venv (scripts/demo.sh) or env (the README's install steps), whichever exists, as run.sh.
const VENV = [".venv", "env"].find((dir) => fs.existsSync(path.join(__dirname, dir, "bin", "python"))) || ".venv";

// --- derived; no need to edit below -------------------------------------------------------

const python = path.join(__dirname, VENV, "bin", "python");
const dojoCli = path.join(__dirname, VENV, "bin", "dojo");

function neuronArgs(type, port) {
  return [
    "--netuid", String(NETUID),
    "--wallet.name", WALLET_NAME,
    "--wallet.hotkey", WALLET_HOTKEY,
    "--logging.debug",
    "--axon.port", String(port),
    "--neuron.type", type,
    "--scoring_method", "dojo",
    "--subtensor.network", NETWORK,
  ];
}

// What every process shares: run from the repository (so .env is found) with the venv's
// python, restarted when it dies, and given 30 s to finish in-flight work on stop
// (pm2 sends SIGINT, then SIGKILL after kill_timeout).
const common = {
  cwd: __dirname,
  interpreter: python,
  autorestart: true,
  restart_delay: 5000,
  kill_timeout: 30000,
};

const processes = {
  "dojo-validator": {
    ...common,
    script: path.join(__dirname, "main_validator.py"),
    args: neuronArgs("validator", VALIDATOR_AXON_PORT),
  },
  "dojo-synthetic": {
    ...common,
    script: dojoCli,
    args: ["synthetic", "serve", "--backend", SYNTHETIC_BACKEND, "--port", String(SYNTHETIC_PORT)],
  },
  "dojo-miner": {
    ...common,
    script: path.join(__dirname, "main_miner.py"),
    args: neuronArgs("miner", MINER_AXON_PORT),
  },
  "dojo-platform": {
    ...common,
    script: dojoCli,
    args: [
      "platform", "serve",
      "--subtensor.network", NETWORK,
      "--netuid", String(NETUID),
      "--host", PLATFORM_HOST,
      "--port", String(PLATFORM_PORT),
      ...(PLATFORM_PUBLIC_URL ? ["--public-url", PLATFORM_PUBLIC_URL] : []),
    ],
  },
};

const roles = {
  validator: ["dojo-validator", "dojo-synthetic"],
  miner: ["dojo-miner", "dojo-platform"],
  all: Object.keys(processes),
};
if (!roles[ROLE]) {
  throw new Error(`ecosystem.config.js: ROLE is "${ROLE}"; set it to "validator", "miner" or "all"`);
}

const apps = roles[ROLE].map((name) => ({ name, ...processes[name] }));

if (AUTOUPDATE) {
  // run.sh checks every UPDATE_INTERVAL seconds and restarts ROLE's processes on a newer
  // release. This file starts them, so run.sh starts nothing (AUTOUPDATE_START_CMD ":").
  // Its other settings are documented at the top of run.sh.
  apps.push({
    name: "dojo-autoupdater",
    cwd: __dirname,
    script: path.join(__dirname, "run.sh"),
    interpreter: "bash",
    autorestart: true,
    restart_delay: 60000,
    env: {
      UPDATE_INTERVAL: "1200",
      AUTOUPDATE_PROCESSES: roles[ROLE].join(" "),
      AUTOUPDATE_PYTHON: python,
      AUTOUPDATE_START_CMD: ":",
    },
  });
}

module.exports = { apps };
