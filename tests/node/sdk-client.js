// Drives Bespoken's own virtual-device-sdk (pinned in package.json) against VIRTUAL_DEVICE_BASE_URL, unchanged.
// Usage: node sdk-client.js '<json command>'  ->  prints one JSON line with what the SDK returned (or rejected).
// Commands: {"op":"message","token","text","phrases","homophones","voiceID","debug"}
//           {"op":"batch","token","messages":[{"text":...}],"homophones"}
//           {"op":"async","token","messages":[...],"homophones","pollMs","maxPolls"}
//           {"op":"stop","token","uuid"}
"use strict";
const { VirtualDevice } = require("virtual-device-sdk");

function device(cmd, asyncMode) {
    const config = { token: cmd.token, locale: "en-US" };
    if (cmd.voiceID) config.voiceID = cmd.voiceID;
    if (asyncMode) config.asyncMode = true;
    const vd = new VirtualDevice(config);
    for (const [word, list] of Object.entries(cmd.homophones || {})) vd.addHomophones(word, list);
    return vd;
}

async function main() {
    const cmd = JSON.parse(process.argv[2]);
    try {
        let out;
        if (cmd.op === "message") {
            out = await device(cmd).message(cmd.text, cmd.debug, cmd.phrases);
        } else if (cmd.op === "batch") {
            out = await device(cmd).batchMessage(cmd.messages, cmd.debug);
        } else if (cmd.op === "async") {
            const vd = device(cmd, true);
            const started = await vd.batchMessage(cmd.messages);
            const polls = [];
            for (let i = 0; i < (cmd.maxPolls || 100); i++) {
                const conversation = await vd.getConversationResults(started.conversation_id);
                polls.push({ status: conversation.status, results: conversation.results.length });
                if (conversation.status === "COMPLETED" || conversation.status === "ERROR") {
                    out = { conversation_id: started.conversation_id, final: conversation, polls };
                    break;
                }
                await new Promise((r) => setTimeout(r, cmd.pollMs || 200));
            }
            if (!out) out = { conversation_id: started.conversation_id, timedOut: true, polls };
        } else if (cmd.op === "stop") {
            out = { stopped: await device(cmd, true).stopConversation(cmd.uuid) };
        } else {
            throw new Error("unknown op " + cmd.op);
        }
        process.stdout.write(JSON.stringify({ ok: out }) + "\n");
    } catch (error) {
        process.stdout.write(JSON.stringify({ rejected: typeof error === "string" ? error : String(error) }) + "\n");
    }
}

main();
