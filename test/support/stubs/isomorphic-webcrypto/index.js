// Node's own Web Crypto, which is what fhirclient uses first anyway (see package.json).
module.exports = { default: globalThis.crypto };
