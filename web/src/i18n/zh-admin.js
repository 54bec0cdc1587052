// Simplified Chinese: the admin page's texts (English text -> Chinese).
export default {
};
