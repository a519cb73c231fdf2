// Loaded into the Agents Playground with `node --require`: it listens on every interface by
// default and has no option to change that, so every server it starts is kept on 127.0.0.1.
"use strict";
const net = require("net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    if (args.length === 1 || typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
    else args[1] = "127.0.0.1";
  } else if (args[0] && typeof args[0] === "object" && !args[0].path) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (args.length === 0 || typeof args[0] === "function") {
    args.unshift(0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
