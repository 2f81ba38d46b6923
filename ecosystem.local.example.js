// The settings of ecosystem.config.js for this machine. Copy this file to ecosystem.local.js
// (git does not track that one, so the autoupdater can update the checkout) and edit it;
// leave out what you keep at its default. After a change: pm2 restart ecosystem.config.js
// --update-env. This file itself stays as it is: ecosystem.config.js reads the defaults from it.
module.exports = {
  // Testnet: NETWORK "test", NETUID 98.  Mainnet: NETWORK "finney", NETUID 52.
  NETWORK: "test",
  NETUID: 98,

  // "validator": dojo-validator and dojo-synthetic.  "miner": dojo-miner and dojo-platform.
  // "all": all four (a local test machine).
  ROLE: "validator",

  // The wallet of each role (coldkey name and hotkey name, under WALLET_PATH): each hotkey
  // registered on NETUID. With ROLE "all" the two must be different hotkeys.
  VALIDATOR_WALLET_NAME: "coldkey",
  VALIDATOR_WALLET_HOTKEY: "hotkey",
  MINER_WALLET_NAME: "coldkey",
  MINER_WALLET_HOTKEY: "hotkey",
  WALLET_PATH: "", // "" = ~/.bittensor/wallets

  // true adds dojo-autoupdater (run.sh), which restarts ROLE's processes on a newer signed
  // release; pin the release signers first (README, The autoupdater). Its settings (the top
  // of run.sh) go in AUTOUPDATE_ENV, e.g. { UPDATE_INTERVAL: "600" }.
  AUTOUPDATE: false,
  AUTOUPDATE_ENV: {},

  // The signed endpoints the neurons serve (the original Dojo ports); open them in the firewall.
  MINER_AXON_PORT: 9602,
  VALIDATOR_AXON_PORT: 9603,

  // The worker platform: where it listens, and the URL workers and the miner reach it at
  // ("" = http://host:port). Put the same URL in the miner's .env as DOJO_API_BASE_URL.
  PLATFORM_HOST: "0.0.0.0",
  PLATFORM_PORT: 8080,
  PLATFORM_PUBLIC_URL: "",

  // The synthetic API: "procedural" (offline) or "llm" (needs OPENROUTER_API_KEY in .env).
  // The validator uses it when its .env has SYNTHETIC_API_URL="http://127.0.0.1:5003"; both
  // read the bearer token the service requires from SYNTHETIC_API_TOKEN in the same .env.
  SYNTHETIC_BACKEND: "procedural",
  SYNTHETIC_PORT: 5003,

  // The virtualenv Dojo is installed in ("" = .venv or env in the checkout, whichever exists).
  VENV: "",
};
